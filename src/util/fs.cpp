#include "util/fs.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace clm {

namespace {
// Opens `path` for reading if it is a regular file of at most max_bytes; sets `size`. A FIFO or
// a device (/dev/zero given as config.json) would block forever or never end, and a size taken
// from fstat cannot lie the way a stream can. O_NONBLOCK: opening a FIFO waits for a writer
// otherwise (it changes nothing for regular files).
int open_regular(const std::string& path, uint64_t max_bytes, size_t& size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
  struct stat st;
  std::string why;
  if (::fstat(fd, &st) != 0)
    why = std::strerror(errno);
  else if (S_ISDIR(st.st_mode))
    why = "is a directory";
  else if (!S_ISREG(st.st_mode))
    why = "not a regular file";
  else if (uint64_t(st.st_size) > max_bytes)
    why = std::to_string(st.st_size) + " bytes, more than the " + std::to_string(max_bytes) + "-byte limit";
  if (!why.empty()) {
    ::close(fd);
    throw std::runtime_error("cannot read '" + path + "': " + why);
  }
  size = size_t(st.st_size);
  return fd;
}
}  // namespace

std::string read_file(const std::string& path, uint64_t max_bytes) {
  size_t size = 0;
  int fd = open_regular(path, max_bytes, size);
  std::string out(size, '\0');
  size_t got = 0;
  while (got < size) {  // a file that shrinks meanwhile ends early; one that grows is read up to its fstat size
    ssize_t n = ::read(fd, out.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      throw std::runtime_error("error reading '" + path + "': " + std::strerror(e));
    }
    if (n == 0) break;
    got += size_t(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

MappedFile::~MappedFile() {
  if (data && size) ::munmap(data, size);
}

std::shared_ptr<MappedFile> map_file(const std::string& path) {
  auto m = std::make_shared<MappedFile>();
  int fd = open_regular(path, UINT64_MAX, m->size);  // no limit: a mapping reads only what is used
  if (m->size) {
    void* p = ::mmap(nullptr, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      m->size = 0;
      throw std::runtime_error("cannot map '" + path + "': " + std::strerror(e));
    }
    m->data = static_cast<char*>(p);
  }
  ::close(fd);
  return m;
}

std::string shorten(std::string_view s, size_t max) {
  return s.size() <= max ? std::string(s) : std::string(s.substr(0, max)) + "...";
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  for (size_t i = 0; i < text.size();) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    lines.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  return lines;
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  // The rename below replaces whatever has the name: never a FIFO, a device or a socket (as root
  // that would turn /dev/null into a file). A symlink is judged by what it points to.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw std::runtime_error("refusing to write '" + path + "': it exists and is not a regular file");
  std::string dir = fs::path(path).parent_path().string();
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write '" + tmp + "': " + std::strerror(errno));
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error("cannot write '" + tmp + "': " + std::strerror(e));
    }
    p += n;
    left -= size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot flush '" + tmp + "'");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(e));
  }
  fsync_dir(dir);
}

void release_pages(const void* p, size_t n) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE)), a = uintptr_t(p), b = a + n;
  const uintptr_t lo = (a + page - 1) / page * page, hi = b / page * page;
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace clm
