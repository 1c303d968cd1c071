// Helpers shared by the tests.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "tensor/tensor.h"

namespace clm::test {

// ||a - b|| / max(||b||, floor): the norm-wise relative error (elementwise relative error is
// meaningless for entries near zero; `floor` keeps a tensor whose true value is ~0 from turning
// rounding noise into a huge relative error).
inline double rel_err(const Tensor& a, const Tensor& b, double floor = 1e-30) {
  EXPECT_EQ(a.numel(), b.numel());
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel() && i < b.numel(); ++i) {
    double d = a.at(i) - b.at(i);
    num += d * d;
    den += b.at(i) * b.at(i);
  }
  return std::sqrt(num) / std::max(std::sqrt(den), floor);
}

// Path of the shared assets (../shared next to the checkout) or "" if absent.
inline std::string shared_dir() {
  if (const char* e = std::getenv("CLM_SHARED")) return e;
  std::string p = std::string(CLM_SOURCE_DIR) + "/../shared";
  return std::filesystem::exists(p) ? p : "";
}

// A committed fixture (tests/fixtures/REL).
inline std::string fixture(const std::string& rel) { return std::string(CLM_SOURCE_DIR) + "/tests/fixtures/" + rel; }

// scripts/test.sh sets CLM_REQUIRE_ASSETS=1: what setup.sh / test.sh install (Debian and npm
// packages) must then be present, so that a broken install fails instead of passing as skips.
inline bool assets_required() {
  const char* e = std::getenv("CLM_REQUIRE_ASSETS");
  return e && *e && std::string(e) != "0";
}
}  // namespace clm::test
// Skips the test without an installable asset, or fails it where assets are required (see above).
#define CLM_NEED_ASSET(cond, msg)                         \
  do {                                                    \
    if (!(cond)) {                                        \
      if (::clm::test::assets_required()) FAIL() << msg;       \
      GTEST_SKIP() << msg;                                \
    }                                                     \
  } while (0)
namespace clm::test {

// A fresh temporary folder removed at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/clm-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace clm::test
