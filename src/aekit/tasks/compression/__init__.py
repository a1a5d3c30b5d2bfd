"""Compression with autoencoders: uniform quantization of codes, entropy coding (range coder with
a fitted per-dimension model, or lzma / zlib), and a versioned, checksummed container.

See docs/compression.md and `aekit compress` / `aekit decompress`.
"""

from .codec import Codec, code_length, compress, compression_stats, decompress, encode_codes, fit_codec, model_hash
from .container import pack_container, read_container, unpack_container, write_container
from .images import compress_images, decompress_images
from .learned import LearnedCodec, compress_learned, decompress_learned, integer_frequencies, rate_bits
from .entropy import METHODS, decode_symbols, encode_symbols, fit_counts, ideal_bits, probabilities
from .quantize import UniformQuantizer
from .rd import bd_rate

__all__ = ["Codec", "LearnedCodec", "METHODS", "compress_images", "compress_learned", "decompress_images", "decompress_learned", "integer_frequencies",
           "rate_bits", "UniformQuantizer", "bd_rate", "code_length", "compress", "compression_stats", "decode_symbols",
           "decompress", "encode_codes", "encode_symbols", "fit_codec", "fit_counts", "ideal_bits", "model_hash",
           "pack_container", "probabilities", "read_container", "unpack_container", "write_container"]
