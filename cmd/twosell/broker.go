package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/twosell/twosell/config"
)

// cmdBroker is "twosell broker": the embedded Kafka broker (franz-go's
// kfake) alone, in a process of its own: "twosell bench" runs it apart so
// that twosell's own CPU can be measured. It prints one line with its
// address and serves until ctx ends.
func cmdBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address (port 0 picks a free port)")
	advertise := fs.String("advertise", "", "host the broker gives clients to connect to (default: the --addr host; this machine's name when that is a wildcard such as 0.0.0.0)")
	if err := config.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if !config.ValidListenAddr(*addr) {
		return usageError{fmt.Sprintf("--addr %q is not valid; valid: host:port or :port, such as 127.0.0.1:0", *addr)}
	}
	if _, _, err := net.SplitHostPort(*advertise); err == nil {
		return usageError{fmt.Sprintf("--advertise %q: a host only; the port is --addr's", *advertise)}
	}
	cluster, err := startBroker(*addr, kfake.ListenFn(advertisedListen(*addr, *advertise)))
	if err != nil {
		return inUse(err, "--addr")
	}
	defer cluster.Close()
	given := cluster.ListenAddrs()[0]
	fmt.Fprintf(stdout, "kafka broker listening on %s\n", given)
	// The line above is the address clients are given (bench reads it);
	// where that is another host than the one bound, say which is bound
	// (found by a walkthrough: "listening on vm:44393" for --addr 0.0.0.0:44393).
	if bound, _, _ := net.SplitHostPort(*addr); bound != hostOf(given) {
		_, port, _ := net.SplitHostPort(given)
		where := net.JoinHostPort(bound, port)
		if bound == "" {
			where = "port " + port + " of every interface"
		}
		fmt.Fprintf(stdout, "  (bound to %s; the address above is the one clients are given: --advertise)\n", where)
	}
	<-ctx.Done()
	return nil
}

// hostOf is addr's host ("" if it has none).
func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }

// startBroker starts a single-broker kfake cluster on addr.
func startBroker(addr string, opts ...kfake.Opt) (*kfake.Cluster, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usageError{fmt.Sprintf("address %q: %v", addr, err)}
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, usageError{fmt.Sprintf("address %q: bad port", addr)}
	}
	cluster, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(p),
		// kfake listens on 127.0.0.1; honor the host asked for. (dev's
		// broker is this machine's: a wildcard advertises "::", which a
		// client here, or on the host of a container with the port
		// published, reaches as loopback.)
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("embedded Kafka on %s: %w", addr, err)
	}
	return cluster, nil
}

// advertisedListen returns a kfake.ListenFn that listens on addr and gives
// clients host to connect to (kfake advertises its listener's address):
// with host empty, addr's host, or, when that is a wildcard, this machine's
// name, as Kafka does for a listener without a host. A wildcard was
// advertised as "::", which a client on another machine cannot reach.
func advertisedListen(addr, host string) func(network, _ string) (net.Listener, error) {
	return func(network, _ string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		h := host
		if h == "" {
			h, _, _ = net.SplitHostPort(addr)
			if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
				if h, err = os.Hostname(); err != nil {
					h = "localhost"
				}
			}
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		return advertised{ln, net.JoinHostPort(h, port)}, nil
	}
}

// advertised is a listener whose Addr is the address clients are given.
type advertised struct {
	net.Listener
	addr string
}

func (a advertised) Addr() net.Addr { return advertisedAddr(a.addr) }

type advertisedAddr string

func (advertisedAddr) Network() string  { return "tcp" }
func (a advertisedAddr) String() string { return string(a) }
