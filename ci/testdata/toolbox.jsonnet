// A summary of the toolbox's pinned tools, rendered from
// tools/toolbox/expected.lock (a JSON file is a jsonnet file): the job
// "render" of ci/spindle.yaml writes it, the job "pinned" checks it.
local lock = import '../../tools/toolbox/expected.lock';

{
  go: lock.go,
  tools: [
    {
      name: name,
      module: lock.tools[name].module,
      sha256: lock.tools[name].sha256,
    }
    for name in std.objectFields(lock.tools)
  ],
}
