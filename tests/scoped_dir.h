// A test's scratch directory under the gtest temp dir, removed however the test ends (ASSERTs
// return early).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace moepp::testing {

class ScopedDir {
 public:
  explicit ScopedDir(const std::string& name) : path_(::testing::TempDir() + "/" + name) { remove(); }
  ~ScopedDir() { remove(); }
  ScopedDir(const ScopedDir&) = delete;
  ScopedDir& operator=(const ScopedDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  void remove() const {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path_;
};

}  // namespace moepp::testing
