#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "lory/moe_cpu.h"

namespace lory {

ParallelFor serial_for() {
  return [](size_t n, const std::function<void(size_t)>& body) {
    for (size_t i = 0; i < n; ++i) body(i);
  };
}

ParallelFor thread_for(int threads) {
  return [threads](size_t n, const std::function<void(size_t)>& body) {
    const size_t workers = std::min<size_t>(std::max(threads, 1), n);
    if (workers <= 1) {
      for (size_t i = 0; i < n; ++i) body(i);
      return;
    }
    std::atomic<size_t> next{0};  // dynamic scheduling: tasks differ in cost at the edges
    auto work = [&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) body(i);
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < workers; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
  };
}

}  // namespace lory
