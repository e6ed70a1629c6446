package target_test

import (
	"fmt"
	"strings"

	"github.com/spindle-hq/spindle/target"
)

func ExampleParse() {
	t, err := target.Parse("ssh://bastion/ssh://admin@web1:2222?identity=/k/id&hostkey=accept-new/sudo://")
	if err != nil {
		panic(err)
	}
	for _, h := range t {
		fmt.Printf("%s %s user=%q host=%q port=%d identity=%q\n", h.Method, h.Name, h.User, h.Host, h.Port, h.Identity)
	}
	fmt.Println(t)
	// Output:
	// ssh ssh.bastion user="" host="bastion" port=0 identity=""
	// ssh ssh.web1 user="admin" host="web1" port=2222 identity="/k/id"
	// sudo sudo.root user="root" host="" port=0 identity=""
	// ssh://bastion/ssh://admin@web1:2222?identity=/k/id&hostkey=accept-new/sudo://root
}

func ExampleInventory_Resolve() {
	inv, err := target.ParseInventory(strings.NewReader(`
[web]
web1 target=ssh://admin@10.0.0.1
web2 target=ssh://admin@10.0.0.2 name=frontend2
[web:vars]
via=ssh://bastion
[db]
db1 target=ssh://db1/sudo://postgres
[prod:children]
web
db
`))
	if err != nil {
		panic(err)
	}
	hosts, err := inv.Resolve("prod")
	if err != nil {
		panic(err)
	}
	for _, h := range hosts {
		fmt.Println(h.Name, h.Target)
	}
	_, err = inv.Resolve("stage")
	fmt.Println(err)
	// Output:
	// web1 ssh://bastion/ssh://admin@10.0.0.1
	// web2 ssh://bastion/ssh://admin@10.0.0.2?name=frontend2
	// db1 ssh://db1/sudo://postgres
	// target: unknown host or group "stage" (groups: all, web, db, prod)
}

func ExampleInventory_Select() {
	inv, err := target.ParseInventory(strings.NewReader(`
[web]
web[01:03] target=ssh://deploy@{name}.example.com
[web:vars]
port=8080
[db]
db[a:b]
web03
[prod:children]
web
db
[prod:vars]
port=80
env=prod
`))
	if err != nil {
		panic(err)
	}
	hosts, err := inv.Select("prod:!db")
	if err != nil {
		panic(err)
	}
	for _, h := range hosts {
		fmt.Println(h.Name, h.Target, h.Vars["port"], h.Vars["env"])
	}
	hosts, _ = inv.Select("web:&db")
	fmt.Println(hosts[0].Name)
	// Output:
	// web01 ssh://deploy@web01.example.com 8080 prod
	// web02 ssh://deploy@web02.example.com 8080 prod
	// web03
}
