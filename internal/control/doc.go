// Package control is the agent's control API: HTTP with JSON bodies over a
// unix socket (default /run/vigil/vigil.sock), through which `vigil ns`
// lists the security modeling namespaces of a running agent, shows their
// state and measurement, seals and enforces them, and reads their
// trajectories, forensics and models.
//
// The Server serves a Backend, the agent's view of its namespaces, and
// refuses every peer that is not root: it reads the peer's credentials from
// the socket (SO_PEERCRED) when the connection is accepted, so a process
// cannot borrow another's identity, and the socket itself is mode 0600 in a
// 0700 directory. The Client is what the CLI uses.
//
// Routes (all under /v1):
//
//	GET  /namespaces                          {"namespaces":[NamespaceInfo...]}
//	GET  /namespaces/{ns}                     NamespaceInfo
//	POST /namespaces/{ns}/seal                NamespaceInfo after sealing
//	POST /namespaces/{ns}/enforce             NamespaceInfo after enforcing
//	GET  /namespaces/{ns}/trajectory          TSEM event descriptions, one a line (application/x-ndjson)
//	GET  /namespaces/{ns}/trajectory/points   {"points":[{"coefficient":HEX,"count":N}...]}
//	GET  /namespaces/{ns}/forensics           as trajectory, for the forensics
//	GET  /namespaces/{ns}/forensics/points    as trajectory/points
//	GET  /namespaces/{ns}/model               the model file (TSEM/Quixote format, text/plain)
//	PUT  /namespaces/{ns}/model               load a model file into the namespace
//	POST /namespaces/{ns}/pseudonyms          {"pathnames":[...]}: pseudonyms for a learning
//	                                          namespace -> NamespaceInfo (409 once sealed; a
//	                                          Backend that is no PseudonymBackend answers 501)
//
// and, for `vigil run` when an agent runs (a Backend that is a RunBackend;
// others answer 501):
//
//	GET    /agent                  AgentInfo (pid, backend, can_enforce, defaults)
//	POST   /namespaces             {"name","origin":"run","settings":{...}} -> 201 NamespaceInfo;
//	                               settings absent keep the agent's defaults
//	POST   /namespaces/{ns}/tasks  {"pid":N}: enrol the caller's child N (before it execs) -> 204
//	POST   /namespaces/{ns}/sync   {"pid":N,"timeout_ms":T} -> {"exited":bool,"namespace":NamespaceInfo}
//	                               once the agent has processed N's exit (or T passed)
//	DELETE /namespaces/{ns}        end a run namespace -> NamespaceInfo (kept a while, then removed)
//
// Request bodies are decoded strictly: an unknown field, a value of the
// wrong type or trailing data is a 400 naming the field (or the byte
// offset of a syntax error). The creator of a run namespace is the peer
// that created it: when that process exits without ending the namespace,
// the agent ends it.
//
// Errors are {"error": "..."} with 400 (bad input), 403 (peer not allowed),
// 404 (no such namespace), 409 (not possible in the namespace's mode), 413
// (a body over 1 MiB, or over 64 MiB for a model file, declared or sent) or
// 500; the Client maps them back to this package's sentinel errors.
//
// # Limits
//
// Server.Limits (internal/httplimit) bound what a client can hold: 5 s for
// a request header, 30 s for a whole request, 30 s to write a reply, 60 s
// idle between requests, 16 KiB of header (431 past it), and 64
// connections at once (past that, new connections wait until one closes).
// Routes that wait or stream on purpose extend their own connection's
// deadlines instead: sync by its timeout_ms plus 10 s; seal, enforce and
// model loading by 5 minutes (pushing a large allow set into the kernel);
// trajectory, forensics and model downloads by 5 minutes per 64 KiB chunk
// (StreamStall), so a client that keeps reading is never cut however large
// the reply, and one paging through it may pause that long. No route
// streams without end (there is no follow or watch).
//
// Concurrency: a Server handles requests concurrently and calls the Backend
// from several goroutines at once, so a Backend must be safe for that. A
// Client is safe for concurrent use.
package control
