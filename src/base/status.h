// Status and Result<T>: how every function that touches the outside world (files, configs,
// flags, requests) reports failure. Messages follow "where: what, expected X, got Y".
#pragma once

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace moepp {

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  static Status Ok() { return Status(); }
  static Status Error(std::string message) {
    Status s;
    s.failed_ = true;
    s.message_ = std::move(message);
    return s;
  }
  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }
  // Prefixes context ("file.json: ") to the message of a failed status.
  Status with_context(const std::string& where) const {
    if (ok()) return *this;
    return Error(where + ": " + message_);
  }

 private:
  bool failed_ = false;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}           // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {    // NOLINT: implicit by design
    if (status_.ok()) status_ = Status::Error("internal: Result built from an ok Status");
  }
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

// printf-style formatting into std::string, for error messages.
std::string str_format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace moepp

#define MOEPP_CONCAT_INNER(a, b) a##b
#define MOEPP_CONCAT(a, b) MOEPP_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if `expr` failed.
#define MOEPP_RETURN_IF_ERROR(expr)                  \
  do {                                               \
    ::moepp::Status moepp_status_ = (expr);          \
    if (!moepp_status_.ok()) return moepp_status_;   \
  } while (0)

// `MOEPP_ASSIGN_OR_RETURN(auto x, f());` unwraps a Result or returns its error.
#define MOEPP_ASSIGN_OR_RETURN(lhs, expr) \
  MOEPP_ASSIGN_OR_RETURN_IMPL(MOEPP_CONCAT(moepp_result_, __LINE__), lhs, expr)
#define MOEPP_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// Always-on invariant check: a failure here is a bug in moepp, never bad user input.
#define MOEPP_CHECK(cond)                                                            \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "moepp internal error: %s:%d: check failed: %s\n", __FILE__, \
                   __LINE__, #cond);                                                 \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

#ifdef NDEBUG
#define MOEPP_DCHECK(cond) \
  do {                     \
  } while (0)
#else
#define MOEPP_DCHECK(cond) MOEPP_CHECK(cond)
#endif
