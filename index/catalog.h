// The catalog: every collection of one data directory.
//
//   <data_dir>/meta/                 the RocksDB metadata store (storage/metadata_store.h)
//   <data_dir>/collections/<id>/     one collection's index generations (index/collection.h)
//
// Open() recovers from any crash: RocksDB replays its log (a torn tail is cut), directories no
// committed record names (a build or drop cut short) are removed, and the records of a dropped
// collection a crash left are deleted in the background (index/record_purger.h), each logged. Only
// one process may open a data directory at a time (RocksDB's lock): a second gets Unavailable.
//
// Thread-safe. Collections are shared: a dropped collection stays usable by calls already
// holding it (they then fail with NotFound) and its files go with the last reference. Creates
// and drops run one at a time; Find and List never wait for their synced writes.
#ifndef STRATA_INDEX_CATALOG_H_
#define STRATA_INDEX_CATALOG_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "index/collection.h"
#include "index/record_purger.h"
#include "storage/metadata_store.h"

namespace strata {

class Catalog final {
 public:
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;
  ~Catalog();

  // Unavailable when another process holds the directory; DataLoss for damaged metadata (and, in
  // strict WAL recovery, a write-ahead log damaged before its end: storage/metadata_store.h).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Catalog>> Open(
      const std::string& data_dir, const CollectionOptions& options = {},
      const MetadataStoreOptions& store_options = {});

  // AlreadyExists when the name is taken; InvalidArgument for a bad configuration.
  [[nodiscard]] absl::StatusOr<std::shared_ptr<Collection>> Create(CollectionConfig config);
  // NotFound when absent (InvalidArgument for a name no collection could have). The collection
  // is gone once Drop returns (one synced write); its records are deleted after, in the
  // background (index/record_purger.h), and a start finishes what a stop left. `uid` (may be
  // null) receives the dropped collection's uid.
  [[nodiscard]] absl::Status Drop(const std::string& name, std::string* uid = nullptr);
  // Returns once the records of every collection dropped so far are deleted (or their purge
  // failed, logged): tests and tools.
  void WaitForPurges() { purger_->WaitIdle(); }
  [[nodiscard]] absl::StatusOr<std::shared_ptr<Collection>> Find(const std::string& name) const;
  [[nodiscard]] std::vector<std::shared_ptr<Collection>> List() const;

  // A collection whose records Open could not read (DataLoss: records damaged, or not of any
  // collection Strata writes). One such collection does not keep the others from opening: it is
  // left out of List(), its data is left as it is, Find and Create answer with its damage
  // (DataLoss, AlreadyExists), and Drop removes it, so that its name can be used again. So is a
  // collection the disk had no room to open (ResourceExhausted; a restart once space is freed
  // opens it).
  struct Unopened {
    CollectionConfig config;
    absl::Status why;  // DataLoss or ResourceExhausted, naming the collection and why
  };
  [[nodiscard]] std::vector<Unopened> ListUnopened() const;

  [[nodiscard]] MetadataStore* store() const { return store_.get(); }

 private:
  Catalog(std::string data_dir, CollectionOptions options, std::unique_ptr<MetadataStore> store)
      : data_dir_(std::move(data_dir)),
        options_(std::move(options)),
        store_(std::move(store)),
        purger_(std::make_unique<RecordPurger>(store_.get(), options_.test_before_purge_batch)) {}
  [[nodiscard]] std::string CollectionDir(uint32_t id) const;

  const std::string data_dir_;
  const CollectionOptions options_;
  std::unique_ptr<MetadataStore> store_;
  std::unique_ptr<RecordPurger> purger_;  // (after store_: stopped before it closes)
  // Creates and drops, one at a time: held across their synced writes, which mu_ never is (so
  // that Find, on every call's path, never waits for a disk).
  Mutex change_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<Collection>> collections_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Unopened> unopened_ ABSL_GUARDED_BY(mu_);
  uint32_t next_id_ ABSL_GUARDED_BY(change_mu_) = 1;
};

}  // namespace strata

#endif  // STRATA_INDEX_CATALOG_H_
