// File helpers: whole-file reads with errors that name the file, and atomic writes
// (temp file in the same folder, fsync, rename, fsync of the folder).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace clm {

// Whole-file reads are for configs, tokenizers, corpora and small checkpoints (weights in
// safetensors are memory-mapped instead); 4 GiB is far above any of those.
constexpr uint64_t kMaxReadBytes = uint64_t(4) << 30;
// Throws "cannot read 'path': reason" unless `path` is a regular file of at most max_bytes
// (a FIFO or /dev/zero is refused at once instead of blocking or filling memory).
std::string read_file(const std::string& path, uint64_t max_bytes = kMaxReadBytes);
void write_file_atomic(const std::string& path, std::string_view bytes);
void fsync_dir(const std::string& dir);

// `s` cut to `max` bytes (with "...") for an error message: a hostile file can put megabytes in a
// name, and a message should stay one readable line.
std::string shorten(std::string_view s, size_t max = 80);

// The lines of a text without their '\n' (views into `text`; a final line without one counts).
std::vector<std::string_view> split_lines(std::string_view text);

// A read-mostly private memory map of a whole file (copy-on-write: writes never reach the file).
struct MappedFile {
  char* data = nullptr;
  size_t size = 0;
  ~MappedFile();
};
std::shared_ptr<MappedFile> map_file(const std::string& path);
// Tells the OS that the mapped file pages in [p, p+n) are not needed now (the whole pages inside the
// range): they leave the resident set and are read from the file again if touched. Only for
// memory of map_file whose bytes were not modified.
void release_pages(const void* p, size_t n);  // throws "cannot read 'path': reason"; regular files only

}  // namespace clm
