package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
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
	if err := config.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	cluster, err := startBroker(*addr)
	if err != nil {
		return err
	}
	defer cluster.Close()
	fmt.Fprintf(stdout, "kafka broker listening on %s\n", cluster.ListenAddrs()[0])
	<-ctx.Done()
	return nil
}

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
		// kfake listens on 127.0.0.1; honor the host asked for.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("embedded Kafka on %s: %w", addr, err)
	}
	return cluster, nil
}
