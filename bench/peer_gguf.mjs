// peer_gguf.mjs - the JavaScript peer: @huggingface/gguf (installed under
// tests/tools/node_modules by scripts/install-deps) parsing GGUF files,
// timed inside this process; start-up (node + the import) is reported by
// bench/run apart. Usage: node peer_gguf.mjs [--reps N] [--budget S] LABEL=PATH ...
//                         node peer_gguf.mjs startup
import { createRequire } from "node:module";
import { statSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "tests", "tools", "package.json"));
const { gguf } = await import(pathToFileURL(require.resolve("@huggingface/gguf")).href);

let args = process.argv.slice(2);
if (args[0] === "startup") process.exit(0);
let reps = 7;
let budgetNs = 10e9;
while (args[0] === "--reps" || args[0] === "--budget") {
	if (args[0] === "--reps") reps = Number(args[1]);
	else budgetNs = Number(args[1]) * 1e9;
	args = args.slice(2);
}
for (const spec of args) {
	const eq = spec.indexOf("=");
	const label = spec.slice(0, eq);
	const file = spec.slice(eq + 1);
	const times = [];
	let count = 0;
	let spent = 0;
	for (let r = 0; r <= reps; r++) { // the first is a warm-up unless slower than 0.3 s
		const t0 = process.hrtime.bigint();
		const { tensorInfos } = await gguf(file, { allowLocalFile: true });
		const dt = Number(process.hrtime.bigint() - t0);
		count = tensorInfos.length;
		spent += dt;
		if (r || dt > 3e8) times.push(dt);
		if (times.length >= reps || (times.length && spent > budgetNs)) break;
	}
	times.sort((a, b) => a - b);
	process.stdout.write(JSON.stringify({
		bench: "peer", peer: "@huggingface/gguf", label, tensors: count,
		file_bytes: statSync(file).size, reps: times.length, median_ns: times[times.length >> 1],
		min_ns: times[0],
	}) + "\n");
}
