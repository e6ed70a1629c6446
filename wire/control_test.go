package wire_test

import (
	"fmt"
	"testing"

	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// TestBlobsKeys checks the map keys of GET_BLOBS, PULL_BLOBS and their
// reply are the ones docs/protocol.md gives.
func TestBlobsKeys(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{&wire.GetBlobs{Hashes: []string{"h"}}, "map[hashes:[h]]"},
		{&wire.Blobs{Blobs: []wire.Blob{{Hash: "h", Data: []byte("d")}}, Missing: []string{"m"}, Large: []string{"l"}},
			"map[blobs:[map[data:[100] hash:h]] large:[l] missing:[m]]"},
		{&wire.Blobs{}, "map[]"},
	} {
		b, err := msgpack.Marshal(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := wire.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(m); got != tt.want {
			t.Errorf("%T encodes as %s, want %s", tt.v, got, tt.want)
		}
	}
}
