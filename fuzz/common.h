// Shared by the fuzz targets: the input written to a file (most readers take a path), a few
// strings to encode, and the encode/decode workout for a tokenizer that loaded.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizers/tokenizer.h"

namespace clm_fuzz {

// A per-process temp folder (removed at exit); file(name, bytes) rewrites one file in it.
inline const std::string& temp_dir() {
  static const std::string* dir = [] {  // never freed: the atexit handler below outlives statics
    // tmpfs when there is one: on a busy disk, close() of /tmp files stalled for 36 s (a false hang)
    const char* base = std::getenv("TMPDIR");
    const std::string root = base && *base ? base : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string tmpl = root + "/clm_fuzz.XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    auto* d = new std::string(tmpl);
    std::atexit([] { std::system(("rm -rf '" + temp_dir() + "'").c_str()); });
    return d;
  }();
  return *dir;
}

inline std::string file(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = temp_dir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");  // (no fsync: write_file_atomic's would dominate the run time)
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) std::abort();
  return path;
}

// CLM_FUZZ_VERBOSE=1: print why an input was rejected (to check that seeds load).
inline void note(const std::exception& e) {
  static const bool verbose = std::getenv("CLM_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "rejected: %.300s\n", e.what());
}

// Encodes a few short strings (ASCII, whitespace, multi-byte UTF-8, special-token-looking text,
// invalid UTF-8) and decodes the ids back, token by token too; then decodes the first ids of the
// vocabulary. Exceptions are fine (the caller catches them); memory errors are not.
inline void workout(const clm::Tokenizer& tok) {
  static const std::vector<std::string> texts = {
      "Hello world", "  two  spaces\tand\ttabs\n\nlines\r\n", "naïve café 日本語 🙂 \xe2\x96\x81x",
      "<|endoftext|>a</s><s><unk>b", "\xff\xfe\xc3 \x80\xe2\x96 end", "", " "};
  for (const std::string& s : texts) {
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(s);
    } catch (const std::exception&) {
      continue;
    }
    try {
      (void)tok.decode(ids);
    } catch (const std::exception&) {
    }
    int32_t prev = -1;
    for (int32_t id : ids) {
      try {
        (void)tok.decode_next(prev, id);
      } catch (const std::exception&) {
      }
      prev = id;
    }
  }
  std::vector<int32_t> first;
  for (int64_t i = 0; i < tok.vocab_size() && i < 300; ++i) first.push_back(int32_t(i));
  first.push_back(int32_t(tok.vocab_size()));  // one past the end: must throw, not read
  first.push_back(-1);
  for (int32_t id : first) {
    try {
      (void)tok.decode({id});
    } catch (const std::exception&) {
    }
  }
  try {
    (void)tok.to_json().dump();
  } catch (const std::exception&) {
  }
  (void)tok.eos_id(), (void)tok.bos_id();
}

}  // namespace clm_fuzz
