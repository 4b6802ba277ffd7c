// Package ctrtest runs real containers in end-to-end tests: Podman and
// Docker as Debian ships them (make deps installs podman, runc and
// docker.io), with small images built from this machine's own files and
// imported from a tar archive, so no registry and no network is needed.
//
//	rt := ctrtest.Podman(t)            // or ctrtest.Docker(t): starts dockerd when none answers
//	img := ctrtest.Busybox(t, rt)      // busybox-static as /bin/busybox and its applets
//	out, err := rt.Run(ctx, ctrtest.RunSpec{Image: img, Cmd: []string{"sh", "-c", "cat /etc/os-release"}})
//
// Podman runs with runc and the cgroupfs manager (crun refuses this
// project's hybrid cgroup layout, and there is no systemd), and Docker's
// daemon with the cgroupfs driver, no bridge and no iptables rules; every
// container runs with --network none (its own network namespace with only
// a loopback interface).
//
// A runtime that is not installed, or that cannot be started, skips the
// test with the reason, unless CI=true or VIGIL_TEST_BPF=require, which
// turn the skip into a failure. Container tests need root.
//
// Causes groups a sealed instance's forensics by what differs from the
// model it was sealed to (type, pathname and the fields that differ from
// the closest model event), for tests that measure how well a model
// learned from some instances of an image holds for the others.
//
// A test that gets a Runtime holds a host-wide lock until it ends, so
// container tests of packages that go test runs in parallel take turns.
// Helpers are safe for concurrent use by tests; each Runtime value serves
// one test at a time.
package ctrtest
