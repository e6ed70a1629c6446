// Package modules keeps blobs by content (sha256) and moves them through
// the context tree: wasm modules, and the files and directories of Merkle
// trees (the inputs and outputs of CI steps). A context that lacks a blob
// asks its parent, which answers from its own store or asks its parent in
// turn, so each blob crosses each edge once and every hop keeps a copy; an
// ancestor can pull blobs up from a descendant.
//
// # Usage
//
// Store is the content-addressed store. Put stores a blob pinned: an
// original of this process (the master's workspace files, pulled outputs),
// kept in memory and never evicted. PutVerified stores a blob cached: a
// copy of one whose origin is elsewhere, kept in a memory LRU and, when
// the store has a dir, as a file <dir>/<hash>; both are bounded and evict
// the least recently used first. Get verifies what it reads from disk.
//
// Service serves a Store over a router:
//   - Ensure (one blob, GET_MODULE) and EnsureAll (many, GET_BLOBS in
//     batches) fetch what this context lacks from the parent;
//   - Push (LOAD_MODULE) sends a module down toward a context ahead of use;
//   - Pull and PullTree (PULL_BLOBS) copy blobs a descendant holds into
//     this context's store, pinned.
//
// Trees: a directory is a blob, the canonical encoding of a Dir (EncodeDir):
// its entries sorted by name, each a file (its blob's digest, size, exec
// bit), a directory (its blob's digest and size) or a symlink (its target).
// Store.PutDir stores a directory of the file system as a tree, Store.Merge
// lays trees over one another, Store.Blobs lists what a tree references,
// Service.Materialize makes a tree as files (fetching what is missing), and
// Store.Collect stores the declared outputs of a step as a tree.
//
// # Trust
//
// Blobs come down only from the parent (GET_MODULE and GET_BLOBS replies,
// LOAD_MODULE with parent authority) and up only to an ancestor that asks
// (PULL_BLOBS needs parent authority: a child cannot pull from its parent
// or a sibling). Every blob is hashed on arrival and refused if its sha256
// is not the one asked for. A directory blob is decoded with wire.Unmarshal
// after its entry count is checked, and only if it is exactly the canonical
// encoding of what it decodes to: one tree has one digest. Collect never
// follows a symlink a guest made, and Materialize never writes through one.
//
// # Bounds
//
// Everything a child can make its parent do is bounded:
//   - a GET_BLOBS or PULL_BLOBS names at most MaxBatchHashes (4096) hashes,
//     each valid and once (else code 11, bad request); a reply holds at
//     most MaxBatchBytes (8 MiB, or half the max message size if smaller)
//     of blobs, counting BlobOverhead (100) bytes for each hash it names; a
//     blob larger than that goes alone (GET_MODULE; a PULL_BLOBS of one
//     hash), and no blob can be larger than the max message size;
//   - a parent serves at most MaxInflightPerChild (8) GET_MODULE and
//     GET_BLOBS of one child at once (more: code 3, refused), and a context
//     sends at most as many to its parent at once;
//   - a parent fetches upward only what a request names, and nothing when
//     blobs it holds already fill the reply; it reads no blob that does not
//     fit (the asker asks again for the rest), and asks its parent for the
//     missing ones in one GET_BLOBS round, whose reply the parent bounds,
//     naming large what the parent names large without fetching it: one
//     request costs the edge above at most one reply, however many hashes
//     it names and whatever their sizes;
//   - each GET_MODULE, GET_BLOBS or PULL_BLOBS call has BlobCallTimeout
//     (10 min): a context that stops answering holds a flight that long.
//
// Stores: StoreConfig.MaxDiskBytes (4 GiB; each file counted as its size
// rounded up to 4 KiB, eviction down to 90%) and MaxMemBytes (256 MiB, or
// one larger blob) bound the cached blobs; pinned blobs are not bounded:
// they are what this process itself put or pulled. A HashCache holds at
// most DefaultHashCacheEntries (1 Mi) paths, and starts afresh past that.
//
// Trees: MaxDirEntries (100000) entries per directory, names of at most
// MaxNameBytes (255) bytes (no "/", NUL, "." or ".."), symlink targets of
// at most MaxTargetBytes (4095); MaxTreeDepth (256) levels below the root;
// Materialize makes at most MaxTreePaths (1 Mi) paths, checked before it
// expands anything (a tree may name one directory blob from many places).
// Collect takes at most CollectLimits (1 GiB, 100000 entries by default),
// and PullTree holds a descendant's tree to the puller's CollectLimits (its
// distinct files' declared sizes, and apart its distinct directories'; its
// entries, symlinks included, plus 4096 for the directories Collect makes
// on the way), refused before any file moves and before the next level of
// directories does; a pulled blob must have the size its entry declares,
// and one named too large for a batch while its entry says it fits is
// refused unpulled.
// A file of a tree is one blob of at most MaxFileBytes (128 MiB, one
// message): PutDir and Collect refuse a larger one by name, unread.
// Merge and the size checks work per distinct directory, memoized.
//
// # Concurrency
//
// Store, Service and HashCache are safe for concurrent use. One fetch per
// blob is in flight per context at a time: concurrent Ensure and EnsureAll
// calls (and the requests of children) for the same hash share it. A fetch
// runs under the broker's lifetime, not the asker's ctx, since others may
// wait on it; an asker whose ctx ends stops waiting. Pull has no such
// sharing: two concurrent pulls of one blob both transfer it.
//
// Lock order: Store.evictMu before Store.mu; Service.mu before Store.mu
// (Service.mu is never held while a Store method does I/O). Disk I/O is
// done outside Store.mu. Several processes may share a store dir: files
// are written under a temporary name and renamed; a store rescans the dir
// before it evicts and once it has written a twentieth of its bound since
// its last scan, so the dir passes the bound by at most that much per
// process; a file one process evicts is a miss for the others (fetched
// again from the parent).
//
// A Materialize destination must be private to its caller while it runs:
// it is made through an os.Root, but hard links are made by path. Files
// there may be hard links to the store's read-only files (when both are on
// one file system): they must not be changed in place. RemoveTree removes
// such a tree.
package modules
