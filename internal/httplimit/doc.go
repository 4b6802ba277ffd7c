// Package httplimit bounds what clients can hold of the agent's HTTP
// servers (the control socket and /metrics): how long a request's header
// and body may take to arrive, how long a connection may sit idle or a
// response wait for its reader, how large a header may be, and how many
// connections are served at once.
//
// Limits.Server builds an http.Server with the timeouts and header bound;
// Limits.Listener wraps a listener so that at most MaxConns accepted
// connections are open: past that, Accept waits for one to close (the
// clients beyond it wait in the kernel's listen backlog, and the timeouts
// make sure the connections served do close). A zero Limits field means its
// default. Routes that legitimately wait or stream longer than the
// timeouts extend their own connection's deadlines
// (http.ResponseController); see the control package.
//
// Concurrency: a Limits is a plain value; the listener it returns is safe
// for concurrent use, as net.Listener requires.
package httplimit
