// Package modules keeps wasm modules by content (sha256) and moves them down
// the context tree: a context that lacks a module asks its parent, which
// answers from its own store or asks its parent in turn, so each module
// crosses each edge once and every hop keeps a copy.
//
// # Usage
//
// Store is the content-addressed store: in memory, and on disk when given a
// directory. Service serves a Store over a router: the GET_MODULE handle
// (for direct children), the LOAD_MODULE handle (pushes from the parent, to
// pre-load a path), Ensure (get a module here, fetching it if needed) and
// Push (send a module down to a context ahead of use).
//
// # Trust
//
// A module is accepted only from the parent (LOAD_MODULE needs parent
// authority; GET_MODULE replies come from the parent), and its bytes are
// hashed on arrival: a module whose sha256 is not the one asked for is
// refused. Children may ask for modules (GET_MODULE) but never push them.
//
// # Concurrency
//
// Store and Service are safe for concurrent use. One request per module is
// in flight per context at a time: concurrent Ensure calls for the same
// hash share it.
package modules
