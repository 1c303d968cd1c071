// Every benchmark's main: a bad flag value, a missing file or a failed run ends in one line that
// names the problem and exit code 1, not in std::terminate's abort.
#pragma once
#include <cstdio>
#include <exception>
#include <string>

inline int guarded_main(int argc, char** argv, int (*body)(int, char**)) {
  try {
    return body(argc, argv);
  } catch (const std::exception& e) {
    const std::string path = argc > 0 ? argv[0] : "bench";
    std::fprintf(stderr, "%s: %s\n", path.substr(path.find_last_of('/') + 1).c_str(), e.what());
    return 1;
  }
}
