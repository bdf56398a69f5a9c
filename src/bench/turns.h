// Probes that compare variants of one measurement (a kernel and a plain read of the same memory)
// run them in turns, call by call, so that the machine's drift (large under a hypervisor) falls
// on all of them alike.
#pragma once

#include <functional>
#include <vector>

namespace moepp {

// Calls each variant `calls` times, rotating which goes first; variant v's call c gets copy
// (first[v] + c) % copies. Returns each variant's total seconds.
std::vector<double> time_in_turns(const std::vector<std::function<void(int)>>& variants, const std::vector<int>& first,
                                  int copies, int calls);

}  // namespace moepp
