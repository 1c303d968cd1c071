// Memory the process may use, checked before a large allocation so that a model or a context
// that cannot fit is refused in one line naming what asked for it, instead of ending in a bare
// std::bad_alloc or in the kernel's OOM killer minutes later.
//
// The limit is --max-memory (or CLM_MAX_MEMORY) when given, otherwise what the machine has
// available now: MemAvailable of /proc/meminfo, lowered by a cgroup v2 memory.max when the process
// runs under one (a container).
#pragma once
#include <cstdint>
#include <string>

namespace clm {

// "8G", "512MiB", "1.5GB", "300000000" (bytes; K/M/G/T are powers of 1024). Throws
// std::invalid_argument naming `flag` for anything else, zero or a negative size.
int64_t parse_size(const std::string& s, const std::string& flag = "--max-memory");
std::string human_bytes(double bytes);  // "1.50 GiB"

// An explicit limit in bytes (0: back to the machine's available memory).
void set_memory_limit(int64_t bytes);
// What may still be allocated: the explicit limit minus the process's resident memory, or what
// the machine has available now; `source` (optional) says which, for messages.
int64_t memory_room(std::string* source = nullptr);
int64_t resident_bytes();

// Throws std::runtime_error "<what> needs 4.00 TiB, more than the 20.1 GiB <source>" when need
// exceeds memory_room() (need < 0 means the size overflowed: always refused).
void check_memory(int64_t need, const std::string& what);

// a * b (and more factors) in int64, or -1 when it overflows or a factor is negative: sizes
// computed from untrusted config values go through this before anything is allocated.
int64_t checked_mul(std::initializer_list<int64_t> factors);
// The sum, or -1 when a term is negative (an overflowed size from checked_mul) or the sum overflows.
int64_t checked_add(std::initializer_list<int64_t> terms);

}  // namespace clm
