#include "server/request_stream.h"

namespace moepp::server {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
    case FinishReason::kNone: break;
  }
  return "none";
}

bool RequestStream::next(TokenEvent* event) {
  std::unique_lock<std::mutex> lock(mutex_);
  ready_.wait(lock, [&] { return !events_.empty() || reason_ != FinishReason::kNone; });
  if (events_.empty()) return false;
  *event = std::move(events_.front());
  events_.pop_front();
  return true;
}

FinishReason RequestStream::finish_reason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reason_;
}

std::string RequestStream::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

void RequestStream::push(TokenEvent event) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(event));
  }
  ready_.notify_all();
}

void RequestStream::finish(FinishReason reason, std::string error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (reason_ != FinishReason::kNone) return;
    reason_ = reason;
    error_ = std::move(error);
  }
  ready_.notify_all();
}

}  // namespace moepp::server
