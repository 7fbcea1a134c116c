// The static part of the zone: apex SOA and NS and any other records from an
// RFC 1035 master file, loaded once with ldns and kept in wire form so that the
// query path copies RDATA into answers without parsing or allocating.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dns/wire.h"

namespace dns {

// A zone file that cannot be served; the message names the file (and the line, for
// syntax errors, or the offending record).
class ZoneError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ZoneNode;

struct StaticRRset {
  std::uint16_t type = 0;
  std::uint32_t ttl = 0;  // of the first record: RFC 2181 section 5.2 wants one TTL per RRset
  std::vector<std::vector<std::uint8_t>> rdatas;  // wire form, names uncompressed
  // Nodes of this zone named in the RDATA of NS, MX and SRV records, whose
  // addresses belong in the additional section (RFC 1035 section 3.3).
  std::vector<const ZoneNode*> additional_nodes;
};

struct ZoneNode {
  Name name;
  std::vector<StaticRRset> rrsets;  // ordered by type; empty for an empty non-terminal

  const StaticRRset* find(std::uint16_t type) const;
};

class Zone {
 public:
  // Reads `path` with `origin` as the apex. Throws ZoneError.
  static std::shared_ptr<const Zone> load(const std::string& path, std::string_view origin);
  // The same from text in memory; `source` names it in error messages.
  static std::shared_ptr<const Zone> parse(std::string_view text, std::string_view origin,
                                           std::string_view source = "<memory>");

  const Name& apex() const { return apex_; }
  const ZoneNode& apex_node() const { return *find(apex_); }
  const StaticRRset& soa() const { return *apex_node().find(rrtype::soa); }
  // RFC 2308 section 5: the negative-caching TTL is min(SOA TTL, SOA MINIMUM).
  std::uint32_t negative_ttl() const { return negative_ttl_; }
  // The SOA serial of the zone file, and the one answered: the file's until a
  // zone-transfer source (xfr/zone_model.h) publishes the registry's.
  std::uint32_t file_serial() const { return file_serial_; }
  std::uint32_t serial() const { return serial_.load(std::memory_order_acquire); }
  void publish_serial(std::uint32_t serial) const {
    serial_.store(serial, std::memory_order_release);
  }
  // The apex SOA's RDATA with serial(): `serial` copied into `out` (room for
  // kMaxSoaRdata bytes); the result views `out`.
  static constexpr std::size_t kMaxSoaRdata = 2 * kMaxNameLength + 20;
  std::span<const std::uint8_t> soa_rdata(std::span<std::uint8_t> out) const;
  std::span<const std::uint8_t> soa_rdata(std::span<std::uint8_t> out, std::uint32_t serial) const;
  // Every node, in the order of their wire names (zone transfers).
  template <typename Visit>
  void for_each_node(Visit&& visit) const {
    for (const auto& [key, node] : nodes_) visit(node);
  }
  // The node at `name` (lower-case), including empty non-terminals; null if none.
  const ZoneNode* find(const Name& name) const;
  std::size_t node_count() const { return nodes_.size(); }

  Zone(const Zone&) = delete;
  Zone& operator=(const Zone&) = delete;

 private:
  class Loader;
  Zone() = default;

  Name apex_;
  std::uint32_t negative_ttl_ = 0;
  std::uint32_t file_serial_ = 0;
  mutable std::atomic<std::uint32_t> serial_{0};
  // Keyed by lower-case wire name. std::map keeps node addresses stable for
  // StaticRRset::additional_nodes.
  std::map<std::string, ZoneNode, std::less<>> nodes_;
};

}  // namespace dns
