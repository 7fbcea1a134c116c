#include "xfr/zone_model.h"

#include "store/logging.h"

namespace xfr {
namespace {

std::shared_ptr<spdlog::logger> logger() {
  return store::component_logger("xfr");
}

using ServiceRecords = std::shared_ptr<const std::vector<Record>>;

void append(std::vector<Record>& to, const std::vector<Record>& records) {
  to.insert(to.end(), records.begin(), records.end());
}

}  // namespace

ZoneModel::ZoneModel(store::RegistryStore& store, std::shared_ptr<const dns::Zone> zone,
                     ZoneModelOptions options)
    : store_(store), zone_(std::move(zone)), options_(std::move(options)) {}

ZoneModel::~ZoneModel() {
  stop();
}

void ZoneModel::start() {
  refresh();
  thread_ = std::thread([this] { run(); });
}

void ZoneModel::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ZoneModel::wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  wake_.notify_all();
}

void ZoneModel::run() {
  bool failing = false;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, options_.poll_interval, [&] { return woken_ || stopping_; });
      if (stopping_) return;
      woken_ = false;
    }
    try {
      refresh();
      if (failing) logger()->info("zone transfers: the registry is readable again");
      failing = false;
    } catch (const std::exception& error) {
      std::lock_guard lock(mutex_);
      ++stats_.errors;
      if (!failing) logger()->warn("zone transfers: cannot read the registry: {}", error.what());
      failing = true;
    }
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, options_.min_interval, [&] { return stopping_; });
  }
}

void ZoneModel::refresh() {
  std::lock_guard one_at_a_time(refresh_mutex_);
  const auto previous = current();
  store::RegistryRead read = store_.read_registry_since(previous ? previous->sequence : 0);
  if (previous && !read.complete && read.sequence == previous->sequence) return;
  auto next = std::make_shared<ZoneVersion>();
  next->sequence = read.sequence;
  next->serial = serial_of(read.sequence);
  next->static_records = previous
                             ? previous->static_records
                             : std::make_shared<const std::vector<Record>>(static_records(*zone_));
  if (previous && !read.complete) next->services = previous->services;
  auto step = std::make_shared<JournalStep>();
  for (const store::ServiceSnapshot& snapshot : read.services) {
    auto records =
        std::make_shared<const std::vector<Record>>(service_records(snapshot, options_.settings));
    const std::vector<Record>* old = nullptr;
    if (previous) {
      const auto found = previous->services.find(snapshot.service);
      if (found != previous->services.end()) old = found->second.get();
    }
    if (old) {
      append(step->removed, difference(*old, *records));
      append(step->added, difference(*records, *old));
    } else {
      append(step->added, *records);
    }
    if (records->empty()) {
      next->services.erase(snapshot.service);
    } else {
      next->services[snapshot.service] = std::move(records);
    }
  }
  if (previous && read.complete) {
    // A service that is no longer there went with all its records.
    for (const auto& [service, records] : previous->services) {
      if (!next->services.contains(service)) append(step->removed, *records);
    }
  }
  next->record_count = next->static_records->size();
  for (const auto& [service, records] : next->services) next->record_count += records->size();
  step->from = previous ? previous->serial : 0;
  step->to = next->serial;
  // A database restored to an older state: the history no longer applies.
  const bool backwards = previous && read.sequence < previous->sequence;
  publish(next, previous && !backwards ? std::move(step) : nullptr, read.complete || backwards);
}

void ZoneModel::publish(std::shared_ptr<const ZoneVersion> version,
                        std::shared_ptr<const JournalStep> step, bool full) {
  std::vector<std::function<void(std::uint32_t)>> listeners;
  {
    std::lock_guard lock(mutex_);
    const bool serial_moved = !current_ || current_->serial != version->serial;
    ++stats_.refreshes;
    if (full) ++stats_.full_reads;
    if (!step) {
      journal_.clear();
      journal_records_ = 0;
    } else if (step->from != step->to) {
      journal_records_ += step->removed.size() + step->added.size();
      journal_.push_back(std::move(step));
      while (!journal_.empty() && journal_records_ > options_.journal_records) {
        journal_records_ -= journal_.front()->removed.size() + journal_.front()->added.size();
        journal_.pop_front();
      }
    }
    current_ = std::move(version);
    stats_.journal_steps = journal_.size();
    stats_.journal_records = journal_records_;
    if (serial_moved) listeners = listeners_;
  }
  zone_->publish_serial(current()->serial);
  for (const auto& listener : listeners) listener(current()->serial);
}

std::shared_ptr<const ZoneVersion> ZoneModel::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

std::optional<std::vector<std::shared_ptr<const JournalStep>>> ZoneModel::steps_since(
    std::uint32_t serial, std::shared_ptr<const ZoneVersion>* version) const {
  std::lock_guard lock(mutex_);
  if (version) *version = current_;
  std::vector<std::shared_ptr<const JournalStep>> steps;
  // RFC 1995 section 2: a client as new as we are, or newer (RFC 1982
  // arithmetic; another primary ahead of us), gets the SOA alone.
  if (!current_ || static_cast<std::int32_t>(serial - current_->serial) >= 0) return steps;
  auto first = journal_.begin();
  while (first != journal_.end() && (*first)->from != serial) ++first;
  if (first == journal_.end()) return std::nullopt;
  steps.assign(first, journal_.end());
  if (steps.back()->to != current_->serial) return std::nullopt;
  return steps;
}

void ZoneModel::on_serial(std::function<void(std::uint32_t)> listener) {
  std::lock_guard lock(mutex_);
  listeners_.push_back(std::move(listener));
}

ZoneModelStats ZoneModel::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace xfr
