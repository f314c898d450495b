// A fresh directory for one test (or one suite), removed with everything in it when the guard
// goes out of scope. Test-only; not a general filesystem helper (see core/file_io.h).
#pragma once
#include <string>

namespace circuitlab::testing {

class TempDir {
 public:
  // mkdtemp under $TMPDIR (else /tmp): "<tmp>/circuitlab-<tag>-XXXXXX".
  explicit TempDir(const std::string& tag = "test");
  // Removes the tree, restoring owner permissions first (bad-input tests take some away).
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  operator const std::string&() const { return path_; }

 private:
  std::string path_;
};

}  // namespace circuitlab::testing
