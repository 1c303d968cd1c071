#include "data/corpus.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "util/fs.h"

namespace clm {

namespace fs = std::filesystem;

static std::string read_nonempty(const std::string& path) {
  std::string s = read_file(path);
  if (s.find_first_not_of(" \t\r\n") == std::string::npos) throw std::runtime_error("'" + path + "': empty corpus file");
  return s;
}

TextSplits load_text_files(const std::string& train, const std::string& valid, const std::string& test) {
  return {train, read_nonempty(train), read_nonempty(valid), read_nonempty(test)};
}

TextSplits load_text_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error("'" + dir + "': not a directory (expected train/valid/test files)");
  std::string found[3];
  const char* keys[3] = {"train", "valid", "test"};
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (auto& p : files)
    for (int k = 0; k < 3; ++k)
      if (p.filename().string().find(keys[k]) != std::string::npos) {
        if (!found[k].empty())
          throw std::runtime_error("'" + dir + "': more than one " + keys[k] + " file (" + found[k] + ", " + p.string() + ")");
        found[k] = p.string();
      }
  for (int k = 0; k < 3; ++k)
    if (found[k].empty()) throw std::runtime_error("'" + dir + "': no file with '" + keys[k] + "' in its name");
  TextSplits t = load_text_files(found[0], found[1], found[2]);
  t.name = dir;
  return t;
}

TextSplits fortunes_corpus(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error("'" + dir + "': not found; install Debian's fortunes package (scripts/setup.sh) or pass --data DIR");
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir)) {
    auto p = e.path();
    if (e.is_regular_file() && !e.is_symlink() && p.extension().empty()) files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  TextSplits t;
  t.name = "fortunes (" + dir + ")";
  int64_t record = 0;
  for (auto& p : files) {
    const std::string text = read_file(p.string());
    std::string cur;
    for (std::string_view line : split_lines(text)) {
      cur += line;
      cur += '\n';
      if (line == "%") {
        if (cur.size() > 2) {
          std::string& dst = record % 20 == 0 ? t.valid : record % 20 == 1 ? t.test : t.train;
          dst += cur;
          ++record;
        }
        cur.clear();
      }
    }
  }
  if (t.train.empty() || t.valid.empty()) throw std::runtime_error("'" + dir + "': no fortunes found");
  return t;
}

void mask_tokens(Tensor& x, Tensor& y, int32_t mask_id, double p, Rng& rng) {
  const int64_t n = x.numel();
  Tensor in = Tensor::empty({n}, DType::i32), tg = Tensor::empty({n}, DType::i32);
  const int32_t* src = x.data<int32_t>();
  int32_t *xi = in.data<int32_t>(), *yi = tg.data<int32_t>();
  int64_t masked = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool m = rng.uniform() < p;
    xi[i] = m ? mask_id : src[i], yi[i] = m ? src[i] : -1;
    masked += m;
  }
  if (!masked && n) xi[0] = mask_id, yi[0] = src[0];
  x = in, y = tg;
}

StreamLoader::StreamLoader(const std::vector<int32_t>& stream, int64_t B, int64_t T, const std::string& what)
    : s_(stream), B_(B), T_(T), lane_(B > 0 ? int64_t(stream.size()) / B : 0) {
  if (B <= 0 || T <= 0) throw std::invalid_argument("batch size and sequence length must be > 0");
  if (lane_ < T + 1)
    throw std::invalid_argument(what + " has " + std::to_string(stream.size()) + " tokens, too few for batch " +
                                std::to_string(B) + " x sequence " + std::to_string(T + 1));
}

void StreamLoader::next(Tensor& x, Tensor& y) {
  if (st_.pos + T_ + 1 > lane_) {
    st_.pos = 0;
    ++st_.epoch;
  }
  x = Tensor::empty({B_ * T_}, DType::i32);
  y = Tensor::empty({B_ * T_}, DType::i32);
  int32_t *px = x.data<int32_t>(), *py = y.data<int32_t>();
  for (int64_t b = 0; b < B_; ++b) {
    const int32_t* src = s_.data() + b * lane_ + st_.pos;
    std::copy(src, src + T_, px + b * T_);
    std::copy(src + 1, src + T_ + 1, py + b * T_);
  }
  st_.pos += T_;
}

}  // namespace clm
