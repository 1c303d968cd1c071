#include "formats/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <tuple>

#include "util/fs.h"

namespace clm {

namespace {
const char* st_dtype(DType d) {
  switch (d) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i32: return "I32";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
  }
  return "?";
}
}  // namespace

const Tensor* SafeTensors::find(const std::string& name) const {
  for (auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

const Tensor& SafeTensors::get(const std::string& name, const std::string& file) const {
  if (const Tensor* t = find(name)) return *t;
  throw std::runtime_error((file.empty() ? "" : "'" + file + "': ") + "missing tensor '" + name + "'");
}

// Parses a safetensors image at [base, base + size). Tensors are views into it (no copy) kept
// alive by `owner`.
static SafeTensors parse_view(char* base, size_t size, const std::string& path, std::shared_ptr<const void> owner) {
  const std::string_view bytes(base, size);
  auto fail = [&](const std::string& m) -> void { throw std::runtime_error("'" + path + "': " + m); };
  if (bytes.size() < 8) fail("truncated safetensors file (" + std::to_string(bytes.size()) + " bytes)");
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  if (hlen > bytes.size() - 8) fail("header length " + std::to_string(hlen) + " exceeds file size");
  const size_t data_begin = 8 + hlen, data_size = bytes.size() - data_begin;
  // The spec: the header is one JSON object from its first byte, padded at the end with spaces
  // (0x20) only. The declared length must end exactly there: a length that cuts the object is bad
  // JSON, one that reaches into the data leaves bytes the JSON does not account for (refused here
  // or by the data-section checks below).
  size_t json_end = data_begin;
  while (json_end > 8 && base[json_end - 1] == ' ') --json_end;
  // nlohmann keeps the last of repeated keys silently; a tensor listed twice must be refused.
  std::vector<std::set<std::string>> keys;  // keys seen so far in the open object at each depth
  auto no_repeats = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& j) {
    if (ev == nlohmann::json::parse_event_t::object_start) {
      keys.resize(size_t(depth) + 2);
      keys[size_t(depth) + 1].clear();
    } else if (ev == nlohmann::json::parse_event_t::key && !keys[size_t(depth)].insert(j.get<std::string>()).second) {
      const std::string k = shorten(j.get<std::string>());
      fail(depth == 1 ? "tensor '" + k + "' listed twice" : "key '" + k + "' repeated in the header");
    }
    return true;
  };
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(base + 8, base + json_end, no_repeats);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("bad JSON header: ") + e.what());
  }
  if (!h.is_object()) fail("header is not a JSON object");
  if (base[8] != '{' || base[json_end - 1] != '}')  // nlohmann also skips tabs, newlines, leading blanks
    fail("header of length " + std::to_string(hlen) + " is not one JSON object padded with spaces only");
  SafeTensors st;
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> ranges;  // begin, end, tensor name
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const std::string tn = "tensor '" + shorten(name) + "'";  // for messages
    const auto& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail("__metadata__ is not an object");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string()) fail("metadata value '" + shorten(m.key()) + "' is not a string");
        st.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      fail(tn + ": entry needs dtype, shape and data_offsets");
    if (!e["dtype"].is_string()) fail(tn + ": dtype is not a string");
    DType dt;
    try {
      dt = dtype_from_name(e["dtype"].get<std::string>());
    } catch (const std::exception&) {
      fail(tn + ": unsupported dtype '" + shorten(e["dtype"].get<std::string>()) + "'");
    }
    const auto& js = e["shape"];
    const auto& jo = e["data_offsets"];
    if (!js.is_array() || js.size() > 8) fail(tn + ": bad shape");
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      fail(tn + ": bad data_offsets");
    Shape shape;
    uint64_t n = 1;
    for (const auto& d : js) {
      if (!d.is_number_unsigned()) fail(tn + ": bad shape");
      uint64_t v = d.get<uint64_t>();
      if (v > (uint64_t(1) << 40) || (v && n > (uint64_t(1) << 40) / v)) fail(tn + ": shape too large");
      n *= v;
      shape.push_back(int64_t(v));
    }
    uint64_t b = jo[0].get<uint64_t>(), en = jo[1].get<uint64_t>();
    if (b > en || en > data_size)
      fail(tn + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
           "] outside the " + std::to_string(data_size) + "-byte data section");
    if (en - b != n * dtype_size(dt))
      fail(tn + ": " + std::to_string(en - b) + " bytes for shape " + shape_str(shape) + " of " +
           dtype_name(dt));
    ranges.push_back({b, en, name});
    // The spec does not align tensors: one whose bytes are not aligned for its dtype (an F64 after
    // one F32) is copied, as a view it would be read with misaligned loads.
    char* const p = base + data_begin + b;
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(dt) == 0) {
      st.tensors.push_back({name, Tensor::external(p, shape, dt, owner)});
    } else {
      Tensor t = Tensor::empty(shape, dt);
      std::memcpy(t.raw(), p, size_t(en - b));
      st.tensors.push_back({name, t});
    }
  }
  // The spec: the data section is the tensors back to back, no holes. A gap, or bytes after the
  // last tensor, mean the offsets or the header length are wrong (a header length one byte short
  // whose padding still parses shows up here as one extra data byte).
  std::sort(ranges.begin(), ranges.end());
  uint64_t end = 0;
  std::string prev;
  for (auto& [b, en, name] : ranges) {
    if (b < end) fail("tensors '" + shorten(prev) + "' and '" + shorten(name) + "' overlap in the data section");
    if (b > end) fail("unused bytes [" + std::to_string(end) + ", " + std::to_string(b) + ") before tensor '" + shorten(name) + "'");
    end = en, prev = name;
  }
  if (end != data_size)
    fail("the tensors end at byte " + std::to_string(end) + " of the " + std::to_string(data_size) + "-byte data section");
  return st;
}

SafeTensors parse_safetensors(const std::string& bytes, const std::string& path) {
  auto copy = std::make_shared<std::string>(bytes);
  return parse_view(copy->data(), copy->size(), path, copy);
}

SafeTensors load_safetensors(const std::string& path) {
  std::shared_ptr<MappedFile> m = map_file(path);  // memory-mapped: weights are converted once, on assignment
  return parse_view(m->data, m->size, path, m);
}

std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (auto& [name, t] : tensors) {
    h[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {off, off + t.nbytes()}}};
    off += t.nbytes();
  }
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8) hs.push_back(' ');  // align the data section
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((uint64_t(hs.size()) >> (8 * i)) & 0xff);
  out += hs;
  out.reserve(out.size() + off);
  for (auto& [name, t] : tensors) {
    Tensor c = t.cpu().contiguous();  // a device tensor is read back first
    out.append(static_cast<const char*>(c.raw()), c.nbytes());
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace clm
