// Files as the rest of circuitlab sees them: atomic writes (temp file, fsync, rename) so a
// crash never leaves half a file, read-only memory maps, and small whole-file reads.
// Not a general filesystem layer: paths are std::string, errors are circuitlab::Error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace circuitlab {

// Writes to "<path>.tmp.<pid>" in the same directory; commit() fsyncs and renames over
// `path`. Destroyed without commit() (an exception, a bad input), the temp file is removed.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // Overwrites bytes already written (e.g. a header patched once the count is known).
  void write_at(uint64_t offset, const void* data, size_t n);
  void commit();
  const std::string& path() const { return path_; }
  uint64_t bytes_written() const { return written_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Whole-file write through AtomicFile.
void write_file_atomic(const std::string& path, std::string_view contents);
// Whole-file read; Error naming the path when it cannot be read.
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);
// mkdir -p; Error naming the path on failure.
void make_dirs(const std::string& path);

// Read-only mmap of a whole file. Empty files map to data()==nullptr, size()==0.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void reset();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace circuitlab
