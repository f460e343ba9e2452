# SPDX-License-Identifier: Apache-2.0
"""reel's counter-based Gaussian noise (Philox4x32-10 + Box-Muller), in numpy.

This is the reference for the C implementation in pipeline/ and for the CUDA
kernels: the same seed gives bit-identical float32 noise on every backend and for
every batch composition. tests/fixtures/README.md ("Noise") states the algorithm;
this file is the executable form of that text and nothing more.

Algorithm (all arithmetic on uint32 wraps modulo 2^32):
  key     = (seed & 0xffffffff, seed >> 32)               seed: unsigned 64-bit
  counter = (j & 0xffffffff, j >> 32, 0, 0)               for block j = 0, 1, 2, ...
  10 rounds; one round with key (k0, k1) maps (c0, c1, c2, c3) to
      (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))
  with M0 = 0xD2511F53, M1 = 0xCD9E8D57, and after each round but the last the key
  is bumped: k0 += 0x9E3779B9, k1 += 0xBB67AE85 (the Random123 definition).
  Block j's output words x0..x3 become uniforms u_k = ((x_k >> 8) + 0.5) / 2^24,
  strictly inside (0, 1), then two Box-Muller pairs in float64:
      n0 = sqrt(-2 ln u0) cos(2 pi u1),  n1 = sqrt(-2 ln u0) sin(2 pi u1)
      n2 = sqrt(-2 ln u2) cos(2 pi u3),  n3 = sqrt(-2 ln u2) sin(2 pi u3)
  each rounded to float32 (round to nearest even). Element i of a sample's
  row-major tensor is lane i % 4 of block i // 4.
"""

import numpy as np

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = 0x9E3779B9
W1 = 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)

# Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter[4], key[2] -> output[4].
KAT_PHILOX4X32_10 = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def philox4x32_10(counter, key):
    """Philox4x32-10 on arrays.

    counter: uint32 array [..., 4]; key: two uint32 (scalars or arrays broadcastable
    to counter[..., 0]). Returns uint32 [..., 4].
    """
    c = np.asarray(counter, dtype=np.uint32).astype(np.uint64)
    c0, c1, c2, c3 = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    k0 = np.asarray(key[0], dtype=np.uint64) & MASK32
    k1 = np.asarray(key[1], dtype=np.uint64) & MASK32
    for r in range(10):
        if r > 0:
            k0 = (k0 + np.uint64(W0)) & MASK32
            k1 = (k1 + np.uint64(W1)) & MASK32
        p0 = M0 * c0  # < 2^64: both factors < 2^32
        p1 = M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def blocks(seed, first_block, nblocks):
    """Raw uint32 output [nblocks, 4] of blocks first_block .. first_block+nblocks-1."""
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2^64), got {seed}")
    j = np.arange(first_block, first_block + nblocks, dtype=np.uint64)
    ctr = np.zeros((nblocks, 4), dtype=np.uint32)
    ctr[:, 0] = (j & MASK32).astype(np.uint32)
    ctr[:, 1] = (j >> np.uint64(32)).astype(np.uint32)
    return philox4x32_10(ctr, (seed & 0xFFFFFFFF, seed >> 32))


def uniforms(x):
    """uint32 words -> float64 uniforms ((x >> 8) + 0.5) / 2^24, exact in float64."""
    return ((x.astype(np.uint64) >> np.uint64(8)).astype(np.float64) + 0.5) / 16777216.0


def normal(seed, shape):
    """float32 standard-normal tensor of `shape` for one sample, from element 0."""
    n = int(np.prod(shape, dtype=np.int64))
    nblocks = (n + 3) // 4
    u = uniforms(blocks(seed, 0, nblocks))  # [nblocks, 4]
    r0 = np.sqrt(-2.0 * np.log(u[:, 0]))
    r1 = np.sqrt(-2.0 * np.log(u[:, 2]))
    a0 = 2.0 * np.pi * u[:, 1]
    a1 = 2.0 * np.pi * u[:, 3]
    out = np.stack([r0 * np.cos(a0), r0 * np.sin(a0), r1 * np.cos(a1), r1 * np.sin(a1)], axis=-1)
    return out.reshape(-1)[:n].astype(np.float32).reshape(shape)


def normal_batch(seeds, shape):
    """[len(seeds), *shape]: each sample from its own seed, each starting at element 0."""
    return np.stack([normal(s, shape) for s in seeds], axis=0)


def self_test():
    for ctr, key, want in KAT_PHILOX4X32_10:
        got = philox4x32_10(np.array(ctr, dtype=np.uint32), key)
        if tuple(int(v) for v in got) != want:
            raise AssertionError(f"Philox KAT failed for ctr={ctr} key={key}: {[hex(int(v)) for v in got]}")


if __name__ == "__main__":
    self_test()
    print("philox4x32-10 known-answer tests pass")
    print(normal(42, (2, 5)))
