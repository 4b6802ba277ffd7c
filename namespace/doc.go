// Package namespace owns Vigil's security modeling namespaces: which
// namespace an event belongs to, each namespace's model and life cycle, the
// identity of the tasks in them, and finding the containers the agent gives
// namespaces of their own.
//
// # Namespaces
//
// A Registry creates namespaces with ids that are never reused (0 is the
// host); the id is the TSEM context printed in every event description and
// the key the kernel programs tag records with. A Namespace holds a
// model.Model and goes learning -> sealed -> enforcing, never back. Add
// numbers an event in its namespace, maps it to its coefficient (in the
// model's hash and dialect, with its pseudonyms: model.Mapping) and adds it
// to the model; an event outside a sealed model marks its task's trust
// domain untrusted. Lost records are recorded as gaps and counted, never
// dropped silently.
//
// # Task identity
//
// Tasks maps the kernel's task trust domains (TTDs: a number a task gets at
// every exec, never repeated) to TSEM task ids, computed at exec from the
// parent's id and the executed file's cell (not the credentials, as in the
// TSEM kernel); a fork keeps the ids. Nothing is keyed by PID. See Tasks for the rules.
//
// # Dispatch
//
// A Dispatcher takes decoded ring-buffer records in order: fork, exit and
// exec records update Tasks, security event records are converted
// (events.Converter, with file digests from an events.DigestCache) and added
// to their namespace. Records of a namespace the registry does not hold are
// counted and dropped: nothing from outside a namespace enters its model.
//
// # Containers
//
// ParseCgroupPath and the watcher in container_watch.go find containers by
// their cgroup v2 directories, for the agent to give each its namespace.
// An ImageResolver (image.go) finds the image a container runs from in the
// state files its runtime keeps on the host, so that models can be kept
// per image, and where its files are (rootfs.go: the root file system and
// bind mount sources of its OCI runtime spec). A ContainerFS
// (containerfs.go) holds those open from the host, so that the files a
// container's tasks opened can be hashed after the tasks, and the
// container, are gone (events.FileSystem).
//
// # Concurrency
//
// Registry, Namespace, Tasks and ContainerFS are safe for concurrent use. A Dispatcher's
// Dispatch must be called by one goroutine at a time per capture, so that a
// task's fork, exec and events are seen in the kernel's order.
package namespace
