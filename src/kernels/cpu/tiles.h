// Token tiles of a compile-time width: tile.template operator()<T>() for T = W over the first
// nt - nt % W tokens (advancing t by W each time), then once for the remaining nt % W (if any), so
// that every tile's accumulators are registers of a fixed count.
#pragma once
#include <cstdint>

namespace clm::kernels {

template <int K, class Tile>
inline void tile_tail(int64_t rest, Tile& tile) {
  if constexpr (K > 0) {
    if (rest == K) tile.template operator()<K>();
    else tile_tail<K - 1>(rest, tile);
  }
}

template <int W, class Tile>
inline void token_tiles(int64_t nt, int64_t& t, Tile&& tile) {
  for (; t + W <= nt; t += W) tile.template operator()<W>();
  tile_tail<W - 1>(nt - t, tile);
}

}  // namespace clm::kernels
