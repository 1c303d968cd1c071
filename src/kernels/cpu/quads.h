// The layout of four-row kernels over 4-bit codes (vec.h dot4_w4a8): each full group of
// four rows of `row_bytes` bytes is interleaved per 32 bytes (64 elements), row r's bytes 32c..32c+31
// at 128·c + 32·r of the group (a last piece of 16 bytes: at 128·c + 16·r), so that a product reads
// the four rows as one sequential stream. Rows past the last full group stay row-major. row_bytes is
// a multiple of 16.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace clm::kernels {

inline int64_t quad_offset(int64_t r, int64_t byte, int64_t row_bytes) {
  const int64_t c = byte / 32, len = std::min<int64_t>(32, row_bytes - 32 * c);
  return r / 4 * 4 * row_bytes + 128 * c + len * (r % 4) + byte % 32;
}
// Row-major codes [rows, row_bytes] -> the four-row layout, in place.
inline void interleave_quads(std::vector<uint8_t>& codes, int64_t rows, int64_t row_bytes) {
  std::vector<uint8_t> q(codes.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < row_bytes; ++j)
      q[size_t(r < rows / 4 * 4 ? quad_offset(r, j, row_bytes) : r * row_bytes + j)] = codes[size_t(r * row_bytes + j)];
  codes.swap(q);
}
// Row r of codes in the four-row layout, in row order (gathered into buf where interleaved).
inline const uint8_t* quad_row(const uint8_t* codes, int64_t rows, int64_t row_bytes, int64_t r, std::vector<uint8_t>& buf) {
  if (r >= rows / 4 * 4) return codes + r * row_bytes;
  buf.resize(size_t(row_bytes));
  for (int64_t j = 0; j < row_bytes; ++j) buf[size_t(j)] = codes[quad_offset(r, j, row_bytes)];
  return buf.data();
}

}  // namespace clm::kernels
