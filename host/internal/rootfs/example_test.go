package rootfs_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"

	"github.com/spindle-hq/spindle/host/internal/rootfs"
)

// A directory with a symlink out of it, mounted read-only at /data.
func ExampleNew() {
	base, err := os.MkdirTemp("", "rootfs-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(base)
	dir := filepath.Join(base, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	os.WriteFile(filepath.Join(base, "SECRET"), []byte("secret"), 0o600)
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello"), 0o644)
	os.Symlink("../SECRET", filepath.Join(dir, "link"))

	fsys, err := rootfs.New(dir, true)
	if err != nil {
		log.Fatal(err)
	}
	// Close after every module instance that mounts fsys is closed.
	defer fsys.Close()

	fsCfg := wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(fsys, "/data")
	_ = wazero.NewModuleConfig().WithFSConfig(fsCfg) // then InstantiateModule

	st, errno := fsys.Stat("hello.txt")
	fmt.Println("stat hello.txt:", st.Size, errno)
	_, errno = fsys.OpenFile("link", sys.O_RDONLY, 0)
	fmt.Println("open link:", errno)
	fmt.Println("mkdir:", fsys.Mkdir("new", 0o755))
	// Output:
	// stat hello.txt: 5 success
	// open link: operation not permitted
	// mkdir: read-only file system
}
