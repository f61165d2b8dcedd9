// psrpc_peer calls an egress fleet on Redis with LiveKit's own psrpc client (the generated
// EgressInternal client of github.com/livekit/protocol, pinned in go.mod to the versions
// livekit-server v1.13.5 uses): the calls that the open-source livekit-server never makes,
// so that a test can still check a node answers them as LiveKit's egress does.
//
//	psrpc_peer <redis host:port> list-active [timeout]
//
// list-active: EgressInternal.ListActiveEgress (multi: every node answers). Prints one JSON
// line, {"ok": [{"egressIds": [...]}, ...]} with one entry per node that answered, or
// {"error": "..."} and exits 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/livekit/protocol/rpc"
	"github.com/livekit/psrpc"
	"github.com/redis/go-redis/v9"
)

type answer struct {
	EgressIDs []string `json:"egressIds"`
}

func fail(err error) {
	out, _ := json.Marshal(map[string]string{"error": err.Error()})
	fmt.Println(string(out))
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 || os.Args[2] != "list-active" {
		fmt.Fprintln(os.Stderr, "usage: psrpc_peer <redis host:port> list-active [timeout]")
		os.Exit(2)
	}
	timeout := 2 * time.Second
	if len(os.Args) > 3 {
		d, err := time.ParseDuration(os.Args[3])
		if err != nil {
			fail(err)
		}
		timeout = d
	}
	rc := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{os.Args[1]}})
	bus := psrpc.NewRedisMessageBus(rc)
	client, err := rpc.NewEgressInternalClient(bus, psrpc.WithClientTimeout(timeout))
	if err != nil {
		fail(err)
	}
	// psrpc's Redis bus subscribes the client's response channel asynchronously; a one-shot
	// client that asks at once can miss the answers (a long-lived livekit-server never does).
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Second)
	defer cancel()
	responses, err := client.ListActiveEgress(ctx, "", &rpc.ListActiveEgressRequest{})
	if err != nil {
		fail(err)
	}
	answers := []answer{}
	for r := range responses {
		if r.Err != nil {
			fail(r.Err)
		}
		ids := r.Result.EgressIds
		if ids == nil {
			ids = []string{}
		}
		answers = append(answers, answer{EgressIDs: ids})
	}
	out, _ := json.Marshal(map[string]any{"ok": answers})
	fmt.Println(string(out))
}
