#include "store/balancing/load_balancing.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

namespace store::lb {

std::uint64_t Random::next() {
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double Random::uniform() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

std::uint64_t Random::below(std::uint64_t bound) {
  // Modulo bias is below bound / 2^64: negligible for the list sizes we shuffle.
  return next() % bound;
}

void order_round_robin(std::span<const Instance*> instances, std::uint64_t rotation) {
  if (instances.empty()) return;
  std::rotate(instances.begin(), instances.begin() + rotation % instances.size(), instances.end());
}

void order_weighted(std::span<const Instance*> instances, Random& random) {
  if (instances.size() < 2) return;
  // Key -ln(u)/w is exponential with rate w: the smallest key wins with
  // probability w / sum(w), and so on for the rest.
  thread_local std::vector<std::pair<double, const Instance*>> keyed;
  keyed.clear();
  for (const Instance* instance : instances) {
    const double weight = std::max<double>(instance->registration.weight, 1);
    const double u = 1.0 - random.uniform();  // (0, 1]
    keyed.emplace_back(-std::log(u) / weight, instance);
  }
  std::sort(keyed.begin(), keyed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < keyed.size(); ++i) instances[i] = keyed[i].second;
}

void order_least_loaded(std::span<const Instance*> instances, std::uint64_t rotation) {
  if (instances.size() < 2) return;
  double sum = 0;
  std::size_t reported = 0;
  for (const Instance* instance : instances) {
    if (instance->load) {
      sum += *instance->load;
      ++reported;
    }
  }
  const double average = reported == 0 ? 0 : sum / static_cast<double>(reported);
  const auto load_of = [average](const Instance* instance) {
    return instance->load.value_or(average);
  };
  std::stable_sort(instances.begin(), instances.end(),
                   [&](const Instance* a, const Instance* b) { return load_of(a) < load_of(b); });
  // Each run of equal loads rotates on its own, so tied replicas take turns.
  for (std::size_t begin = 0; begin < instances.size();) {
    std::size_t end = begin + 1;
    while (end < instances.size() && load_of(instances[end]) == load_of(instances[begin])) ++end;
    order_round_robin(instances.subspan(begin, end - begin), rotation);
    begin = end;
  }
}

void order_random(std::span<const Instance*> instances, Random& random) {
  for (std::size_t i = instances.size(); i > 1; --i) {
    std::swap(instances[i - 1], instances[random.below(i)]);
  }
}

void order(LbStrategy strategy, std::span<const Instance*> instances, std::uint64_t rotation,
           Random& random) {
  switch (strategy) {
    case LbStrategy::round_robin:
      return order_round_robin(instances, rotation);
    case LbStrategy::weighted:
      return order_weighted(instances, random);
    case LbStrategy::least_loaded:
      return order_least_loaded(instances, rotation);
    case LbStrategy::random:
      return order_random(instances, random);
  }
}

Balancer::Balancer(std::uint64_t seed, std::size_t max_services)
    : seeds_(seed != 0 ? seed
                       : std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32)),
      max_services_(max_services) {}

void Balancer::order(std::string_view service, LbStrategy strategy,
                     std::span<const Instance*> instances) {
  if (instances.size() < 2) return;
  std::uint64_t rotation = 0;
  std::uint64_t seed = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = rotations_.find(service);
    if (it == rotations_.end()) {
      if (rotations_.size() >= max_services_) rotations_.clear();
      it = rotations_.emplace(std::string(service), 0).first;
    }
    rotation = it->second++;
    seed = seeds_.next();
  }
  Random random(seed);
  lb::order(strategy, instances, rotation, random);
}

}  // namespace store::lb
