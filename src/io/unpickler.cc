// A pickle virtual machine with a closed set of opcodes and globals (docs §9). Objects live in
// a flat pool addressed by index, so memo aliasing works and deep nesting cannot overflow the
// C++ stack; every length is checked against the remaining bytes before use.
#include "io/unpickler.h"

#include <cstring>
#include <unordered_map>

namespace moepp {
namespace {

enum class Kind : uint8_t {
  kNone, kBool, kInt, kFloat, kStr, kTuple, kList, kDict,
  kGlobal,       // i = Callable
  kStorageType,  // i = DType
  kStorage,      // i = index into storages_
  kTensor,       // i = index into tensors_
};

enum Callable : int64_t { kOrderedDict, kRebuildTensorV2, kRebuildParameter };

struct Obj {
  Kind kind = Kind::kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<uint32_t> items;  // tuple/list elements; dict as key, value, key, value, ...
};

struct Storage {
  DType dtype;
  std::string key;
  uint64_t numel;
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kStr: return "str";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kGlobal: return "global";
    case Kind::kStorageType: return "storage type";
    case Kind::kStorage: return "storage";
    case Kind::kTensor: return "tensor";
  }
  return "?";
}

// Printable, bounded rendering of untrusted text for error messages.
std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 120; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else out += str_format("\\x%02x", c);
  }
  if (s.size() > 120) out += "...";
  return out;
}

struct StorageName {
  const char* name;
  DType dtype;
};
constexpr StorageName kStorageTypes[] = {
    {"FloatStorage", DType::kF32},   {"HalfStorage", DType::kF16},  {"BFloat16Storage", DType::kBF16},
    {"DoubleStorage", DType::kF64},  {"LongStorage", DType::kI64},  {"IntStorage", DType::kI32},
    {"ShortStorage", DType::kI16},   {"CharStorage", DType::kI8},   {"ByteStorage", DType::kU8},
    {"BoolStorage", DType::kBool},
};

class Machine {
 public:
  Machine(const uint8_t* data, size_t size, const std::string& where)
      : p_(data), size_(size), where_(where) {}

  Result<std::vector<PickledTensor>> run();

 private:
  Status err(const std::string& what) const { return Status::Error(where_ + ": " + what); }
  Status op_err(const std::string& what) const {
    return err(str_format("opcode 0x%02x at byte %zu: ", op_, op_pos_) + what);
  }
  // Reads n bytes of operand; fails cleanly when the pickle is cut short.
  Status need(uint64_t n) const {
    if (n > size_ - pos_)
      return err(str_format("truncated pickle: opcode 0x%02x at byte %zu needs %llu more bytes, got %zu",
                            op_, op_pos_, static_cast<unsigned long long>(n), size_ - pos_));
    return Status::Ok();
  }
  uint64_t le(int n) {
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | p_[pos_ + k];
    pos_ += n;
    return v;
  }
  Result<uint32_t> make(Obj obj) {
    if (objs_.size() >= kPickleMaxObjects)
      return err(str_format("too many objects, expected at most %zu", kPickleMaxObjects));
    objs_.push_back(std::move(obj));
    return static_cast<uint32_t>(objs_.size() - 1);
  }
  Status push(uint32_t id) {
    if (stack_.size() >= kPickleMaxStack)
      return err(str_format("stack too deep, expected at most %zu entries", kPickleMaxStack));
    stack_.push_back(id);
    return Status::Ok();
  }
  Status push_new(Obj obj) {
    MOEPP_ASSIGN_OR_RETURN(uint32_t id, make(std::move(obj)));
    return push(id);
  }
  // Pops the top of the stack, which must lie above the innermost mark.
  Result<uint32_t> pop() {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() <= floor) return op_err("stack underflow");
    const uint32_t id = stack_.back();
    stack_.pop_back();
    return id;
  }
  Result<uint32_t> top() {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() <= floor) return op_err("stack underflow");
    return stack_.back();
  }
  // Pops everything above the innermost mark, and the mark.
  Result<std::vector<uint32_t>> pop_mark() {
    if (marks_.empty()) return op_err("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<uint32_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Status push_string(uint64_t len) {
    MOEPP_RETURN_IF_ERROR(need(len));
    Obj o;
    o.kind = Kind::kStr;
    o.s.assign(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return push_new(std::move(o));
  }
  Status push_int(int64_t v) {
    Obj o;
    o.kind = Kind::kInt;
    o.i = v;
    return push_new(std::move(o));
  }
  Status push_tuple(std::vector<uint32_t> items) {
    Obj o;
    o.kind = Kind::kTuple;
    o.items = std::move(items);
    return push_new(std::move(o));
  }
  Result<std::string> read_line() {
    for (size_t k = pos_; k < size_ && k - pos_ <= 256; ++k) {
      if (p_[k] == '\n') {
        std::string s(reinterpret_cast<const char*>(p_ + pos_), k - pos_);
        pos_ = k + 1;
        return s;
      }
    }
    return err(str_format("truncated pickle: GLOBAL at byte %zu, expected a newline-terminated name "
                          "of at most 256 bytes",
                          op_pos_));
  }
  Status push_global(const std::string& module, const std::string& name);
  Status persistent_load();
  Status reduce();
  Status set_items(uint32_t dict, const std::vector<uint32_t>& kv);
  Result<int64_t> as_int(uint32_t id, const char* what) {
    if (objs_[id].kind != Kind::kInt && objs_[id].kind != Kind::kBool)
      return op_err(std::string(what) + ": expected int, got " + kind_name(objs_[id].kind));
    return objs_[id].i;
  }
  Result<std::vector<int64_t>> as_int_tuple(uint32_t id, const char* what) {
    const Obj& o = objs_[id];
    if (o.kind != Kind::kTuple) return op_err(std::string(what) + ": expected tuple, got " + kind_name(o.kind));
    if (o.items.size() > kPickleMaxDims)
      return op_err(str_format("%s: %zu dimensions, expected at most %zu", what, o.items.size(), kPickleMaxDims));
    std::vector<int64_t> v;
    for (uint32_t item : o.items) {
      MOEPP_ASSIGN_OR_RETURN(int64_t x, as_int(item, what));
      v.push_back(x);
    }
    return v;
  }
  Result<std::vector<PickledTensor>> collect(uint32_t root);

  const uint8_t* p_;
  size_t size_;
  std::string where_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  uint8_t op_ = 0;
  std::vector<Obj> objs_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, uint32_t> memo_;
  std::vector<Storage> storages_;
  std::vector<PickledTensor> tensors_;
};

Status Machine::push_global(const std::string& module, const std::string& name) {
  Obj o;
  o.kind = Kind::kGlobal;
  if (module == "collections" && name == "OrderedDict") {
    o.i = kOrderedDict;
  } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    o.i = kRebuildTensorV2;
  } else if (module == "torch._utils" && name == "_rebuild_parameter") {
    o.i = kRebuildParameter;
  } else {
    bool found = false;
    if (module == "torch") {
      for (const StorageName& s : kStorageTypes) {
        if (name == s.name) {
          o.kind = Kind::kStorageType;
          o.i = static_cast<int64_t>(s.dtype);
          found = true;
        }
      }
    }
    if (!found)
      return err("forbidden global '" + printable(module) + "." + printable(name) +
                 "' (only state-dict globals are allowed)");
  }
  return push_new(std::move(o));
}

// ('storage', StorageType, key, location, numel) -> a storage reference.
Status Machine::persistent_load() {
  MOEPP_ASSIGN_OR_RETURN(uint32_t pid, pop());
  const Obj& t = objs_[pid];
  if (t.kind != Kind::kTuple || t.items.size() != 5)
    return op_err(std::string("persistent id: expected ('storage', type, key, location, numel), got ") +
                  (t.kind == Kind::kTuple ? str_format("a tuple of %zu", t.items.size()) : kind_name(t.kind)));
  const Obj& tag = objs_[t.items[0]];
  const Obj& type = objs_[t.items[1]];
  const Obj& key = objs_[t.items[2]];
  const Obj& numel = objs_[t.items[4]];
  if (tag.kind != Kind::kStr || tag.s != "storage")
    return op_err("persistent id: expected tag 'storage'");
  if (type.kind != Kind::kStorageType)
    return op_err(std::string("persistent id: expected a torch storage type, got ") + kind_name(type.kind));
  if (key.kind != Kind::kStr || key.s.empty() || key.s.find('/') != std::string::npos || key.s == "..")
    return op_err("persistent id: expected a storage key without '/', got '" + printable(key.s) + "'");
  if (numel.kind != Kind::kInt || numel.i < 0)
    return op_err("persistent id: expected a non-negative element count");
  Storage s{static_cast<DType>(type.i), key.s, static_cast<uint64_t>(numel.i)};
  if (storages_.size() >= kPickleMaxObjects) return op_err("too many storages");
  storages_.push_back(std::move(s));
  Obj o;
  o.kind = Kind::kStorage;
  o.i = static_cast<int64_t>(storages_.size() - 1);
  return push_new(std::move(o));
}

Status Machine::reduce() {
  MOEPP_ASSIGN_OR_RETURN(uint32_t args_id, pop());
  MOEPP_ASSIGN_OR_RETURN(uint32_t fn_id, pop());
  const Obj& fn = objs_[fn_id];
  if (objs_[args_id].kind != Kind::kTuple)
    return op_err(std::string("REDUCE: expected an argument tuple, got ") + kind_name(objs_[args_id].kind));
  const std::vector<uint32_t> args = objs_[args_id].items;
  if (fn.kind != Kind::kGlobal)
    return op_err(std::string("REDUCE: cannot call a ") + kind_name(fn.kind) +
                  ", expected OrderedDict or _rebuild_tensor_v2");
  switch (fn.i) {
    case kOrderedDict: {
      if (!args.empty()) return op_err("OrderedDict(...): expected no arguments");
      Obj o;
      o.kind = Kind::kDict;
      return push_new(std::move(o));
    }
    case kRebuildParameter: {
      // _rebuild_parameter(data, requires_grad, backward_hooks) is the tensor itself for us.
      if (args.size() != 3 || objs_[args[0]].kind != Kind::kTensor)
        return op_err("_rebuild_parameter: expected (tensor, requires_grad, backward_hooks)");
      return push(args[0]);
    }
    case kRebuildTensorV2: {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (args.size() != 6 && args.size() != 7)
        return op_err(str_format("_rebuild_tensor_v2: expected 6 or 7 arguments, got %zu", args.size()));
      if (objs_[args[0]].kind != Kind::kStorage)
        return op_err(std::string("_rebuild_tensor_v2: expected a storage, got ") + kind_name(objs_[args[0]].kind));
      const Storage& st = storages_[static_cast<size_t>(objs_[args[0]].i)];
      PickledTensor t;
      t.dtype = st.dtype;
      t.storage_key = st.key;
      t.storage_numel = st.numel;
      MOEPP_ASSIGN_OR_RETURN(t.storage_offset, as_int(args[1], "_rebuild_tensor_v2 storage_offset"));
      MOEPP_ASSIGN_OR_RETURN(t.size, as_int_tuple(args[2], "_rebuild_tensor_v2 size"));
      MOEPP_ASSIGN_OR_RETURN(t.stride, as_int_tuple(args[3], "_rebuild_tensor_v2 stride"));
      if (t.size.size() != t.stride.size())
        return op_err(str_format("_rebuild_tensor_v2: size has %zu dimensions, stride %zu", t.size.size(),
                                 t.stride.size()));
      if (tensors_.size() >= kPickleMaxObjects) return op_err("too many tensors");
      tensors_.push_back(std::move(t));
      Obj o;
      o.kind = Kind::kTensor;
      o.i = static_cast<int64_t>(tensors_.size() - 1);
      return push_new(std::move(o));
    }
  }
  return op_err("REDUCE: unsupported callable");
}

Status Machine::set_items(uint32_t dict, const std::vector<uint32_t>& kv) {
  if (objs_[dict].kind != Kind::kDict)
    return op_err(std::string("SETITEM(S): expected a dict, got ") + kind_name(objs_[dict].kind));
  if (kv.size() % 2 != 0) return op_err("SETITEMS: odd number of items");
  auto& items = objs_[dict].items;
  items.insert(items.end(), kv.begin(), kv.end());
  return Status::Ok();
}

Result<std::vector<PickledTensor>> Machine::run() {
  while (true) {
    if (pos_ >= size_) return err("truncated pickle, expected STOP before the end of data");
    op_pos_ = pos_;
    op_ = p_[pos_++];
    switch (op_) {
      case 0x80: {  // PROTO
        MOEPP_RETURN_IF_ERROR(need(1));
        const uint64_t v = le(1);
        if (v < 2 || v > 5) return op_err(str_format("pickle protocol %llu, expected 2 to 5", (unsigned long long)v));
        break;
      }
      case 0x95: {  // FRAME: a length prefix only, the content follows inline
        MOEPP_RETURN_IF_ERROR(need(8));
        const uint64_t n = le(8);
        MOEPP_RETURN_IF_ERROR(need(n));
        break;
      }
      case '}': {  // EMPTY_DICT
        Obj o;
        o.kind = Kind::kDict;
        MOEPP_RETURN_IF_ERROR(push_new(std::move(o)));
        break;
      }
      case ']': {  // EMPTY_LIST
        Obj o;
        o.kind = Kind::kList;
        MOEPP_RETURN_IF_ERROR(push_new(std::move(o)));
        break;
      }
      case ')':  // EMPTY_TUPLE
        MOEPP_RETURN_IF_ERROR(push_tuple({}));
        break;
      case '(':  // MARK
        if (marks_.size() >= kPickleMaxStack) return op_err("too many MARKs");
        marks_.push_back(stack_.size());
        break;
      case 'X':  // BINUNICODE
        MOEPP_RETURN_IF_ERROR(need(4));
        MOEPP_RETURN_IF_ERROR(push_string(le(4)));
        break;
      case 0x8c:  // SHORT_BINUNICODE
      case 'U':   // SHORT_BINSTRING
        MOEPP_RETURN_IF_ERROR(need(1));
        MOEPP_RETURN_IF_ERROR(push_string(le(1)));
        break;
      case 'T':  // BINSTRING
        MOEPP_RETURN_IF_ERROR(need(4));
        MOEPP_RETURN_IF_ERROR(push_string(le(4)));
        break;
      case 0x8d:  // BINUNICODE8
        MOEPP_RETURN_IF_ERROR(need(8));
        MOEPP_RETURN_IF_ERROR(push_string(le(8)));
        break;
      case 'J':  // BININT
        MOEPP_RETURN_IF_ERROR(need(4));
        MOEPP_RETURN_IF_ERROR(push_int(static_cast<int32_t>(static_cast<uint32_t>(le(4)))));
        break;
      case 'K':  // BININT1
        MOEPP_RETURN_IF_ERROR(need(1));
        MOEPP_RETURN_IF_ERROR(push_int(static_cast<int64_t>(le(1))));
        break;
      case 'M':  // BININT2
        MOEPP_RETURN_IF_ERROR(need(2));
        MOEPP_RETURN_IF_ERROR(push_int(static_cast<int64_t>(le(2))));
        break;
      case 0x8a: {  // LONG1: little-endian two's complement of n bytes
        MOEPP_RETURN_IF_ERROR(need(1));
        const int n = static_cast<int>(le(1));
        if (n > 8) return op_err(str_format("LONG1 of %d bytes, expected an integer of at most 8 bytes", n));
        MOEPP_RETURN_IF_ERROR(need(n));
        uint64_t v = n ? le(n) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        MOEPP_RETURN_IF_ERROR(push_int(static_cast<int64_t>(v)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE double
        MOEPP_RETURN_IF_ERROR(need(8));
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | p_[pos_ + k];
        pos_ += 8;
        Obj o;
        o.kind = Kind::kFloat;
        std::memcpy(&o.f, &bits, 8);
        MOEPP_RETURN_IF_ERROR(push_new(std::move(o)));
        break;
      }
      case 'N': {  // NONE
        MOEPP_RETURN_IF_ERROR(push_new(Obj{}));
        break;
      }
      case 0x88:    // NEWTRUE
      case 0x89: {  // NEWFALSE
        Obj o;
        o.kind = Kind::kBool;
        o.i = op_ == 0x88;
        MOEPP_RETURN_IF_ERROR(push_new(std::move(o)));
        break;
      }
      case 't': {  // TUPLE
        MOEPP_ASSIGN_OR_RETURN(std::vector<uint32_t> items, pop_mark());
        MOEPP_RETURN_IF_ERROR(push_tuple(std::move(items)));
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<uint32_t> items(op_ - 0x84);
        for (size_t k = items.size(); k-- > 0;) {
          MOEPP_ASSIGN_OR_RETURN(items[k], pop());
        }
        MOEPP_RETURN_IF_ERROR(push_tuple(std::move(items)));
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        MOEPP_ASSIGN_OR_RETURN(std::string module, read_line());
        MOEPP_ASSIGN_OR_RETURN(std::string name, read_line());
        MOEPP_RETURN_IF_ERROR(push_global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        MOEPP_ASSIGN_OR_RETURN(uint32_t name, pop());
        MOEPP_ASSIGN_OR_RETURN(uint32_t module, pop());
        if (objs_[name].kind != Kind::kStr || objs_[module].kind != Kind::kStr)
          return op_err("STACK_GLOBAL: expected module and name strings");
        MOEPP_RETURN_IF_ERROR(push_global(objs_[module].s, objs_[name].s));
        break;
      }
      case 'Q':  // BINPERSID
        MOEPP_RETURN_IF_ERROR(persistent_load());
        break;
      case 'R':  // REDUCE
        MOEPP_RETURN_IF_ERROR(reduce());
        break;
      case 0x81: {  // NEWOBJ: cls.__new__(cls, *args); only OrderedDict() makes sense here
        MOEPP_ASSIGN_OR_RETURN(uint32_t args, pop());
        MOEPP_ASSIGN_OR_RETURN(uint32_t cls, pop());
        if (objs_[cls].kind != Kind::kGlobal || objs_[cls].i != kOrderedDict ||
            objs_[args].kind != Kind::kTuple || !objs_[args].items.empty())
          return op_err("NEWOBJ: only OrderedDict() is supported");
        Obj o;
        o.kind = Kind::kDict;
        MOEPP_RETURN_IF_ERROR(push_new(std::move(o)));
        break;
      }
      case 's': {  // SETITEM
        MOEPP_ASSIGN_OR_RETURN(uint32_t value, pop());
        MOEPP_ASSIGN_OR_RETURN(uint32_t key, pop());
        MOEPP_ASSIGN_OR_RETURN(uint32_t dict, top());
        MOEPP_RETURN_IF_ERROR(set_items(dict, {key, value}));
        break;
      }
      case 'u': {  // SETITEMS
        MOEPP_ASSIGN_OR_RETURN(std::vector<uint32_t> kv, pop_mark());
        MOEPP_ASSIGN_OR_RETURN(uint32_t dict, top());
        MOEPP_RETURN_IF_ERROR(set_items(dict, kv));
        break;
      }
      case 'a':    // APPEND
      case 'e': {  // APPENDS
        std::vector<uint32_t> values;
        if (op_ == 'a') {
          MOEPP_ASSIGN_OR_RETURN(uint32_t v, pop());
          values.push_back(v);
        } else {
          MOEPP_ASSIGN_OR_RETURN(values, pop_mark());
        }
        MOEPP_ASSIGN_OR_RETURN(uint32_t list, top());
        if (objs_[list].kind != Kind::kList)
          return op_err(std::string("APPEND(S): expected a list, got ") + kind_name(objs_[list].kind));
        objs_[list].items.insert(objs_[list].items.end(), values.begin(), values.end());
        break;
      }
      case 'b': {  // BUILD: state_dict() OrderedDicts carry a _metadata attribute; ignore it
        MOEPP_ASSIGN_OR_RETURN(uint32_t state, pop());
        MOEPP_ASSIGN_OR_RETURN(uint32_t obj, top());
        if (objs_[obj].kind != Kind::kDict || objs_[state].kind != Kind::kDict)
          return op_err(std::string("BUILD: expected a dict state on a dict, got ") + kind_name(objs_[state].kind) +
                        " on " + kind_name(objs_[obj].kind));
        break;
      }
      case '0': {  // POP
        MOEPP_ASSIGN_OR_RETURN(uint32_t ignored, pop());
        (void)ignored;
        break;
      }
      case '1': {  // POP_MARK
        MOEPP_ASSIGN_OR_RETURN(std::vector<uint32_t> ignored, pop_mark());
        (void)ignored;
        break;
      }
      case 'q':  // BINPUT
      case 'r':  // LONG_BINPUT
      case 0x94: {  // MEMOIZE
        uint64_t idx;
        if (op_ == 0x94) {
          idx = memo_.size();
        } else {
          MOEPP_RETURN_IF_ERROR(need(op_ == 'q' ? 1 : 4));
          idx = le(op_ == 'q' ? 1 : 4);
        }
        MOEPP_ASSIGN_OR_RETURN(uint32_t v, top());
        if (memo_.size() >= kPickleMaxObjects && memo_.count(idx) == 0)
          return op_err(str_format("memo too large, expected at most %zu entries", kPickleMaxObjects));
        memo_[idx] = v;
        break;
      }
      case 'h':    // BINGET
      case 'j': {  // LONG_BINGET
        MOEPP_RETURN_IF_ERROR(need(op_ == 'h' ? 1 : 4));
        const uint64_t idx = le(op_ == 'h' ? 1 : 4);
        auto it = memo_.find(idx);
        if (it == memo_.end())
          return op_err(str_format("memo key %llu not defined", static_cast<unsigned long long>(idx)));
        MOEPP_RETURN_IF_ERROR(push(it->second));
        break;
      }
      case '.': {  // STOP
        if (stack_.empty()) return op_err("STOP with an empty stack");
        return collect(stack_.back());
      }
      default:
        return err(str_format("unknown or unsupported opcode 0x%02x at byte %zu, expected one of the "
                              "opcodes torch.save uses for a state dict",
                              op_, op_pos_));
    }
  }
}

// Turns the final object into the named tensor list.
Result<std::vector<PickledTensor>> Machine::collect(uint32_t root) {
  if (objs_[root].kind != Kind::kDict)
    return err(std::string("top-level object is a ") + kind_name(objs_[root].kind) +
               ", expected a dict of tensors (a state dict)");
  // {"state_dict": {...}} and {"model": {...}} are common wrappers around a state dict.
  {
    const Obj& d = objs_[root];
    if (d.items.size() == 2 && objs_[d.items[0]].kind == Kind::kStr &&
        (objs_[d.items[0]].s == "state_dict" || objs_[d.items[0]].s == "model") &&
        objs_[d.items[1]].kind == Kind::kDict)
      root = d.items[1];
  }
  const Obj& d = objs_[root];
  std::vector<PickledTensor> out;
  out.reserve(d.items.size() / 2);
  for (size_t k = 0; k + 1 < d.items.size(); k += 2) {
    const Obj& key = objs_[d.items[k]];
    const Obj& value = objs_[d.items[k + 1]];
    if (key.kind != Kind::kStr)
      return err(std::string("state dict key is a ") + kind_name(key.kind) + ", expected str");
    if (value.kind != Kind::kTensor)
      return err("state dict entry '" + printable(key.s) + "' is a " + kind_name(value.kind) +
                 ", expected a tensor (nested dicts other than one 'state_dict'/'model' wrapper are "
                 "not supported)");
    PickledTensor t = tensors_[static_cast<size_t>(value.i)];
    t.name = key.s;
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

Result<std::vector<PickledTensor>> unpickle_state_dict(const uint8_t* data, size_t size,
                                                       const std::string& where) {
  Machine m(data, size, where);
  return m.run();
}

}  // namespace moepp
