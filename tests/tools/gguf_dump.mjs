// gguf_dump.mjs - reads a GGUF file with the npm package @huggingface/gguf (an
// independent implementation) and prints what it found as JSON, for
// tests/python/test_gguf_independent.py to compare with `ttsm inspect --json`.
// BigInts print as decimal strings, non-finite floats as "NaN"/"Infinity"/
// "-Infinity". Usage: node gguf_dump.mjs FILE

// TextDecoder drops a leading byte-order mark unless told not to, so a token
// that is exactly U+FEFF (Llama vocabularies have one) would read as "".
// Keep it: the test compares strings byte for byte.
const BaseDecoder = globalThis.TextDecoder;
globalThis.TextDecoder = class extends BaseDecoder {
	constructor(label, options) {
		super(label, { ...options, ignoreBOM: true });
	}
};
const { gguf } = await import("@huggingface/gguf");

// The library mixes these three header fields into its metadata.
const PSEUDO_KEYS = new Set(["version", "tensor_count", "kv_count"]);

function plain(v) {
	if (typeof v === "bigint") return v.toString();
	if (typeof v === "number" && !Number.isFinite(v)) {
		return Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
	}
	if (Array.isArray(v)) return v.map(plain);
	return v;
}

const file = process.argv[2];
if (!file) {
	process.stderr.write("usage: node gguf_dump.mjs FILE\n");
	process.exit(2);
}
try {
	const { metadata, typedMetadata, tensorInfos, tensorDataOffset, littleEndian } = await gguf(file, {
		allowLocalFile: true,
		typedMetadata: true,
	});
	const meta = {};
	for (const [key, entry] of Object.entries(typedMetadata)) {
		if (PSEUDO_KEYS.has(key)) continue;
		meta[key] = { type: entry.type, subType: entry.subType ?? null, value: plain(entry.value) };
	}
	const out = {
		version: metadata.version,
		kv_count: metadata.kv_count.toString(),
		little_endian: littleEndian,
		tensor_data_offset: tensorDataOffset.toString(),
		tensors: tensorInfos.map((t) => ({
			name: t.name,
			n_dims: t.n_dims,
			ne: t.shape.map((d) => d.toString()),
			ggml_type: t.dtype,
			offset: (tensorDataOffset + t.offset).toString(),
		})),
		metadata: meta,
	};
	process.stdout.write(JSON.stringify(out) + "\n");
} catch (e) {
	process.stderr.write(`gguf_dump: ${file}: ${e && e.message ? e.message : e}\n`);
	process.exit(1);
}
