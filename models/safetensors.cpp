// safetensors reading (mmap + validation) and atomic writing. See safetensors.h.
#include "models/safetensors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace circuitlab::models {

namespace {
constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's cap

struct DtypeRow {
  const char* name;
  torch::ScalarType type;
  int size;
};
const DtypeRow kDtypes[] = {
    {"F32", torch::kFloat, 4}, {"F16", torch::kHalf, 2},  {"BF16", torch::kBFloat16, 2}, {"F64", torch::kDouble, 8},
    {"I64", torch::kLong, 8},  {"I32", torch::kInt, 4},   {"I16", torch::kShort, 2},     {"I8", torch::kChar, 1},
    {"U8", torch::kByte, 1},   {"BOOL", torch::kBool, 1},
};
const DtypeRow* find_dtype(const std::string& name) {
  for (const auto& r : kDtypes)
    if (name == r.name) return &r;
  return nullptr;
}
}  // namespace

torch::ScalarType safetensors_dtype(const std::string& dtype, const std::string& where) {
  const DtypeRow* r = find_dtype(dtype);
  if (!r) fail(where + ": unsupported dtype \"" + dtype + "\" (expected one of F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL)");
  return r->type;
}

std::string safetensors_dtype_name(torch::ScalarType t) {
  for (const auto& r : kDtypes)
    if (r.type == t) return r.name;
  fail(std::string("cannot write dtype ") + c10::toString(t) + " to safetensors");
}

struct SafetensorsFile::State {
  MappedFile map;
  uint64_t data_start = 0;
  std::map<std::string, SafetensorInfo> infos;
  std::vector<std::string> order;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.s_ = std::make_shared<State>();
  State& s = *f.s_;
  s.map = MappedFile(path);
  const uint64_t size = s.map.size();
  if (size < 8) fail(path + ": truncated safetensors file (" + std::to_string(size) + " bytes, need at least 8)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | s.map.data()[i];  // little-endian u64
  if (n > size - 8)
    fail(path + ": header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes)");
  if (n > kMaxHeader) fail(path + ": header length " + std::to_string(n) + " exceeds the 100000000-byte limit");
  s.data_start = 8 + n;
  const uint64_t data_size = size - s.data_start;
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(reinterpret_cast<const char*>(s.map.data()) + 8,
                              reinterpret_cast<const char*>(s.map.data()) + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail(path + ": header is not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!h.is_object()) fail(path + ": header must be a JSON object");
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) fail(path + ": __metadata__ must be an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail(path + ": __metadata__ value of '" + m.key() + "' must be a string");
        s.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    const nlohmann::json& e = *it;
    if (!e.is_object()) fail(where + ": entry must be an object with dtype, shape, data_offsets");
    SafetensorInfo info;
    info.name = name;
    if (!e.contains("dtype") || !e["dtype"].is_string()) fail(where + ": missing string field 'dtype'");
    info.dtype = e["dtype"].get<std::string>();
    const DtypeRow* dt = find_dtype(info.dtype);
    if (!dt) safetensors_dtype(info.dtype, where);  // throws with the list of supported dtypes
    if (!e.contains("shape") || !e["shape"].is_array()) fail(where + ": missing array field 'shape'");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) fail(where + ": shape entries must be non-negative integers, got " + e["shape"].dump());
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && numel > UINT64_MAX / v) overflow = true;
      numel *= v;
      info.shape.push_back(static_cast<int64_t>(v));
    }
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2 ||
        !e["data_offsets"][0].is_number_unsigned() || !e["data_offsets"][1].is_number_unsigned())
      fail(where + ": 'data_offsets' must be [begin, end] with non-negative integers");
    info.begin = e["data_offsets"][0].get<uint64_t>();
    info.end = e["data_offsets"][1].get<uint64_t>();
    if (info.begin > info.end)
      fail(where + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) + "] has begin > end");
    if (info.end > data_size)
      fail(where + ": data_offsets end " + std::to_string(info.end) + " is out of range: the data section has " +
           std::to_string(data_size) + " bytes (file truncated?)");
    if (overflow || numel > UINT64_MAX / static_cast<uint64_t>(dt->size) ||
        numel * static_cast<uint64_t>(dt->size) != info.end - info.begin)
      fail(where + ": shape " + e["shape"].dump() + " of " + info.dtype + " needs " +
           (overflow ? std::string("too many") : std::to_string(numel * dt->size)) + " bytes, data_offsets span " +
           std::to_string(info.end - info.begin));
    s.infos[name] = std::move(info);
  }
  // Offsets must tile the data section: sorted, no overlap, no gap, last end = its size.
  std::vector<const SafetensorInfo*> sorted;
  for (const auto& kv : s.infos) sorted.push_back(&kv.second);
  std::sort(sorted.begin(), sorted.end(), [](const SafetensorInfo* a, const SafetensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const SafetensorInfo* t = sorted[i];
    if (t->begin < cursor)
      fail(path + ": tensor '" + t->name + "' data_offsets [" + std::to_string(t->begin) + ", " + std::to_string(t->end) +
           "] overlap tensor '" + sorted[i - 1]->name + "' (ends at " + std::to_string(cursor) + ")");
    if (t->begin > cursor)
      fail(path + ": tensor '" + t->name + "' starts at " + std::to_string(t->begin) + ", leaving a gap after byte " +
           std::to_string(cursor) + " of the data section");
    cursor = t->end;
    s.order.push_back(t->name);
  }
  if (cursor != data_size)
    fail(path + ": data section has " + std::to_string(data_size) + " bytes but the tensors end at " +
         std::to_string(cursor) + " (trailing bytes or a wrong header)");
  return f;
}

const std::string& SafetensorsFile::path() const { return s_->map.path(); }
std::vector<std::string> SafetensorsFile::names() const { return s_->order; }
bool SafetensorsFile::contains(const std::string& name) const { return s_->infos.count(name) > 0; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return s_->metadata; }
uint64_t SafetensorsFile::file_size() const { return s_->map.size(); }

const SafetensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = s_->infos.find(name);
  if (it == s_->infos.end()) fail(path() + ": missing tensor '" + name + "'");
  return it->second;
}

torch::Tensor SafetensorsFile::view(const std::string& name) const {
  const SafetensorInfo& inf = info(name);
  const DtypeRow* dt = find_dtype(inf.dtype);
  auto opts = torch::TensorOptions().dtype(dt->type);
  const uint8_t* p = s_->map.data() + s_->data_start + inf.begin;
  if (inf.end == inf.begin) return torch::empty(inf.shape, opts);
  if (reinterpret_cast<uintptr_t>(p) % dt->size != 0) {
    torch::Tensor t = torch::empty(inf.shape, opts);
    std::memcpy(t.data_ptr(), p, inf.end - inf.begin);
    return t;
  }
  auto keep = s_;
  return torch::from_blob(const_cast<uint8_t*>(p), inf.shape, [keep](void*) {}, opts);
}

void SafetensorsFile::release(const std::string& name) const {
  const SafetensorInfo& inf = info(name);
  release(name, 0, inf.end - inf.begin);
}

void SafetensorsFile::release(const std::string& name, uint64_t from, uint64_t to) const {
  const SafetensorInfo& inf = info(name);
  to = std::min(to, inf.end - inf.begin);
  if (from >= to) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t b = reinterpret_cast<uintptr_t>(s_->map.data() + s_->data_start + inf.begin + from);
  uintptr_t e = reinterpret_cast<uintptr_t>(s_->map.data() + s_->data_start + inf.begin + to);
  b = (b + page - 1) / page * page;
  e = e / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  std::map<std::string, torch::Tensor> r;
  for (const auto& n : f.names()) r[n] = f.view(n).clone();
  return r;
}

void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct Item {
    std::string name;
    torch::Tensor t;
    int align;
  };
  std::vector<Item> items;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path + ": '__metadata__' is reserved and cannot name a tensor");
    TORCH_CHECK(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    safetensors_dtype_name(c.scalar_type());
    items.push_back({name, c, static_cast<int>(c.element_size())});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.align != b.align ? a.align > b.align : a.name < b.name;
  });
  nlohmann::json h = nlohmann::json::object();
  nlohmann::json meta = nlohmann::json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata) meta[k] = v;
  h["__metadata__"] = meta;
  uint64_t off = 0;
  for (const auto& it : items) {
    uint64_t n = static_cast<uint64_t>(it.t.numel()) * it.t.element_size();
    h[it.name] = {{"dtype", safetensors_dtype_name(it.t.scalar_type())}, {"shape", it.t.sizes().vec()},
                  {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string header = h.dump();
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  AtomicFile out(path);
  out.write(len, 8);
  out.write(header);
  for (const auto& it : items) out.write(it.t.data_ptr(), static_cast<size_t>(it.t.numel()) * it.t.element_size());
  out.commit();
}

}  // namespace circuitlab::models
