// File helpers: whole-file reads with errors that name the file, and atomic writes
// (temp file in the same folder, fsync, rename, fsync of the folder).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace clm {

std::string read_file(const std::string& path);  // throws "cannot read 'path': reason"
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
std::shared_ptr<MappedFile> map_file(const std::string& path);  // throws "cannot read 'path': reason"

}  // namespace clm
