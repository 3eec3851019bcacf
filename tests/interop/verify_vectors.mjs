#!/usr/bin/env node
// Independent verifier of the Tadamun known-answer vectors (SPEC.md §13).
//
// Written from SPEC.md and the JSON vectors alone, without reading the reference
// implementation, to show that the wire protocol can be implemented from its
// specification. Node.js >= 20, no npm dependencies.
//
// Usage: node tests/interop/verify_vectors.mjs [--verbose]
// Prints one summary line per vector file, then "N passed, M failed"; exits 1 on failure.

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VECTOR_DIR = process.env.TADAMUN_VECTOR_DIR ?? path.resolve(HERE, "..", "vectors");
const VERBOSE = process.argv.includes("--verbose");

// ---------------------------------------------------------------------------
// Errors and small helpers
// ---------------------------------------------------------------------------

/** A protocol error carrying one of the stable codes of SPEC.md §12. */
class ProtoError extends Error {
  constructor(code, detail) {
    super(`${code}: ${detail}`);
    this.code = code;
  }
}
const fail = (code, detail) => {
  throw new ProtoError(code, detail);
};

/** A failed expectation of the verifier itself (not a protocol error). */
class CheckError extends Error {}
function expect(cond, msg) {
  if (!cond) throw new CheckError(msg);
}
function expectEq(actual, expected, what) {
  if (actual !== expected) {
    throw new CheckError(`${what}: expected ${short(expected)}, got ${short(actual)}`);
  }
}
function short(x) {
  const s = typeof x === "string" ? x : JSON.stringify(x, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  return s !== undefined && s.length > 160 ? `${s.slice(0, 150)}…(${s.length} chars)` : s;
}

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (h) => {
  if (typeof h !== "string" || !/^([0-9a-f]{2})*$/.test(h)) throw new CheckError(`not lower-case hex: ${short(h)}`);
  return Buffer.from(h, "hex");
};
const sha256 = (b) => crypto.createHash("sha256").update(b).digest();
const sha512 = (b) => crypto.createHash("sha512").update(b).digest();

// ---------------------------------------------------------------------------
// Ed25519 (§2.1) through node:crypto, keys built from raw bytes via DER
// ---------------------------------------------------------------------------

const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

function privateKeyFromSeed(seed) {
  if (seed.length !== 32) throw new CheckError(`seed of ${seed.length} bytes`);
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: "der", type: "pkcs8" });
}
function publicKeyObject(pk) {
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519, pk]), format: "der", type: "spki" });
}
function publicKeyFromSeed(seed) {
  const spki = crypto.createPublicKey(privateKeyFromSeed(seed)).export({ format: "der", type: "spki" });
  expect(spki.subarray(0, 12).equals(SPKI_ED25519), "unexpected SPKI prefix from node:crypto");
  return spki.subarray(12);
}
function ed25519Sign(seed, msg) {
  return crypto.sign(null, msg, privateKeyFromSeed(seed));
}
function ed25519Verify(pk, msg, sig) {
  if (!Buffer.isBuffer(pk) || pk.length !== 32 || !Buffer.isBuffer(sig) || sig.length !== 64) return false;
  try {
    return crypto.verify(null, msg, publicKeyObject(pk), sig);
  } catch {
    return false; // not a valid point encoding
  }
}

const KEYEVENT_PREFIX = Buffer.from("TADAMUN-KEYEVENT-SIG-V1\0", "ascii");
const ENVELOPE_PREFIX = Buffer.from("TADAMUN-ENVELOPE-SIG-V1\0", "ascii");

// ---------------------------------------------------------------------------
// Canonical MessagePack (§3)
//
// Values: {t:"nil"} {t:"bool",v} {t:"int",v:BigInt} {t:"str",v:string,b:Buffer}
//         {t:"bin",v:Buffer} {t:"array",v:[value]} {t:"map",v:[{k,kb,v}]}
// ---------------------------------------------------------------------------

const LIMITS = Object.freeze({ total: 65536, depth: 16, str: 32768, bin: 4096, array: 1024, map: 256 });
const MAX_INT = 2n ** 53n - 1n;
// ignoreBOM: a leading U+FEFF is content, not a byte-order mark to strip.
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const mkStr = (s) => ({ t: "str", v: s, b: Buffer.from(s, "utf8") });
const mkInt = (n) => ({ t: "int", v: BigInt(n) });
const mkBin = (b) => ({ t: "bin", v: Buffer.from(b) });

/** Decode one canonical value; throws ProtoError with a §3 code. */
function mpDecode(buf, limits = LIMITS) {
  // §3.5: the total size is checked before anything is read.
  if (buf.length > limits.total) fail("too_large", `${buf.length} bytes > ${limits.total}`);
  const r = { buf, pos: 0 };
  const value = readValue(r, 0, limits);
  if (r.pos !== buf.length) fail("trailing_bytes", `${buf.length - r.pos} bytes after the value`);
  // §3.6 re-encoding rule. Every rule is checked while reading, so this is a safety net.
  const again = mpEncode(value);
  if (!again.equals(buf)) fail("noncanonical", "re-encoding differs from the input");
  return value;
}

function need(r, n) {
  if (r.buf.length - r.pos < n) fail("truncated", `need ${n} bytes at offset ${r.pos}, have ${r.buf.length - r.pos}`);
}
function u8(r) {
  need(r, 1);
  return r.buf[r.pos++];
}
function uN(r, n) {
  need(r, n);
  let v = 0n;
  for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(r.buf[r.pos + i]);
  r.pos += n;
  return v;
}
function sN(r, n) {
  const u = uN(r, n);
  const bits = BigInt(8 * n);
  return u >= 1n << (bits - 1n) ? u - (1n << bits) : u;
}

function readValue(r, depth, limits) {
  const at = r.pos;
  const b = u8(r);
  if (b <= 0x7f) return mkInt(b);
  if (b >= 0xe0) return mkInt(b - 0x100);
  if (b >= 0x80 && b <= 0x8f) return readMap(r, b & 0x0f, depth, limits);
  if (b >= 0x90 && b <= 0x9f) return readArray(r, b & 0x0f, depth, limits);
  if (b >= 0xa0 && b <= 0xbf) return readStr(r, b & 0x1f, limits);
  switch (b) {
    case 0xc0:
      return { t: "nil" };
    case 0xc1:
      return fail("malformed", `reserved byte c1 at offset ${at}`);
    case 0xc2:
      return { t: "bool", v: false };
    case 0xc3:
      return { t: "bool", v: true };
    case 0xc4:
    case 0xc5:
    case 0xc6: {
      const w = { 0xc4: 1, 0xc5: 2, 0xc6: 4 }[b];
      const n = Number(uN(r, w));
      const min = { 1: 0, 2: 0x100, 4: 0x10000 }[w];
      if (n < min) fail("noncanonical", `bin${8 * w} for length ${n}`);
      if (n > limits.bin) fail("too_long", `bin of ${n} bytes > ${limits.bin}`);
      need(r, n);
      const v = Buffer.from(r.buf.subarray(r.pos, r.pos + n));
      r.pos += n;
      return { t: "bin", v };
    }
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return fail("ext_not_allowed", `ext type byte ${b.toString(16)} at offset ${at}`);
    case 0xca:
    case 0xcb:
      return fail("float_not_allowed", `float byte ${b.toString(16)} at offset ${at}`);
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
      const w = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8 }[b];
      const v = uN(r, w);
      if (v > MAX_INT) fail("int_out_of_range", `${v} > 2^53-1`);
      const min = { 1: 128n, 2: 256n, 4: 65536n, 8: 1n << 32n }[w];
      if (v < min) fail("noncanonical", `uint${8 * w} for ${v}`);
      return { t: "int", v };
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
      const w = { 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8 }[b];
      const v = sN(r, w);
      if (v < -MAX_INT) fail("int_out_of_range", `${v} < -(2^53-1)`);
      if (v >= 0n) fail("noncanonical", `signed int${8 * w} for non-negative ${v}`);
      const max = { 1: -33n, 2: -129n, 4: -32769n, 8: -(2n ** 31n) - 1n }[w];
      if (v > max) fail("noncanonical", `int${8 * w} for ${v}`);
      return { t: "int", v };
    }
    case 0xd9:
    case 0xda:
    case 0xdb: {
      const w = { 0xd9: 1, 0xda: 2, 0xdb: 4 }[b];
      const n = Number(uN(r, w));
      const min = { 1: 32, 2: 0x100, 4: 0x10000 }[w];
      if (n < min) fail("noncanonical", `str${8 * w} for length ${n}`);
      return readStr(r, n, limits);
    }
    case 0xdc:
    case 0xdd: {
      const w = b === 0xdc ? 2 : 4;
      const n = Number(uN(r, w));
      if (n < (w === 2 ? 16 : 0x10000)) fail("noncanonical", `array${8 * w} for ${n} items`);
      return readArray(r, n, depth, limits);
    }
    case 0xde:
    case 0xdf: {
      const w = b === 0xde ? 2 : 4;
      const n = Number(uN(r, w));
      if (n < (w === 2 ? 16 : 0x10000)) fail("noncanonical", `map${8 * w} for ${n} entries`);
      return readMap(r, n, depth, limits);
    }
    default:
      return fail("malformed", `unhandled byte ${b.toString(16)}`);
  }
}

function readStr(r, n, limits) {
  // Length is checked before anything is allocated (§3.5).
  if (n > limits.str) fail("too_long", `str of ${n} bytes > ${limits.str}`);
  need(r, n);
  const b = Buffer.from(r.buf.subarray(r.pos, r.pos + n));
  r.pos += n;
  let v;
  try {
    v = UTF8.decode(b);
  } catch {
    fail("invalid_utf8", `str ${hex(b).slice(0, 40)}`);
  }
  return { t: "str", v, b };
}

function readArray(r, n, depth, limits) {
  if (depth + 1 > limits.depth) fail("too_deep", `container at depth ${depth + 1} > ${limits.depth}`);
  if (n > limits.array) fail("too_long", `array of ${n} items > ${limits.array}`);
  const v = [];
  for (let i = 0; i < n; i++) v.push(readValue(r, depth + 1, limits));
  return { t: "array", v };
}

function readMap(r, n, depth, limits) {
  if (depth + 1 > limits.depth) fail("too_deep", `container at depth ${depth + 1} > ${limits.depth}`);
  if (n > limits.map) fail("too_long", `map of ${n} entries > ${limits.map}`);
  const v = [];
  let prev = null;
  for (let i = 0; i < n; i++) {
    const key = readValue(r, depth + 1, limits);
    if (key.t !== "str") fail("non_string_key", `map key of type ${key.t}`);
    if (prev !== null) {
      const c = Buffer.compare(prev, key.b);
      if (c === 0) fail("duplicate_key", `key ${JSON.stringify(key.v)} twice`);
      if (c > 0) fail("unsorted_keys", `key ${JSON.stringify(key.v)} after a greater key`);
    }
    prev = key.b;
    const val = readValue(r, depth + 1, limits);
    v.push({ k: key.v, kb: key.b, v: val });
  }
  return { t: "map", v };
}

/** Encode a value by §3.1-§3.4 (shortest forms, sorted keys). */
function mpEncode(value) {
  const out = [];
  encodeInto(value, out);
  return Buffer.concat(out);
}
function header(out, small, smallMax, forms, n) {
  // forms: [[byte, width, max], ...] in increasing size
  if (small !== null && n <= smallMax) {
    out.push(Buffer.from([small | n]));
    return;
  }
  for (const [byte, width, max] of forms) {
    if (n <= max) {
      const h = Buffer.alloc(1 + width);
      h[0] = byte;
      h.writeUIntBE(n, 1, width);
      out.push(h);
      return;
    }
  }
  throw new CheckError(`length ${n} too large to encode`);
}
function encodeInto(x, out) {
  switch (x.t) {
    case "nil":
      out.push(Buffer.from([0xc0]));
      return;
    case "bool":
      out.push(Buffer.from([x.v ? 0xc3 : 0xc2]));
      return;
    case "int": {
      const v = BigInt(x.v);
      if (v > MAX_INT || v < -MAX_INT) throw new ProtoError("int_out_of_range", `cannot encode ${v}`);
      let b;
      if (v >= 0n) {
        if (v <= 127n) b = Buffer.from([Number(v)]);
        else if (v <= 0xffn) b = Buffer.from([0xcc, Number(v)]);
        else if (v <= 0xffffn) (b = Buffer.alloc(3)), (b[0] = 0xcd), b.writeUInt16BE(Number(v), 1);
        else if (v <= 0xffffffffn) (b = Buffer.alloc(5)), (b[0] = 0xce), b.writeUInt32BE(Number(v), 1);
        else (b = Buffer.alloc(9)), (b[0] = 0xcf), b.writeBigUInt64BE(v, 1);
      } else if (v >= -32n) b = Buffer.from([Number(v) & 0xff]);
      else if (v >= -128n) (b = Buffer.alloc(2)), (b[0] = 0xd0), b.writeInt8(Number(v), 1);
      else if (v >= -32768n) (b = Buffer.alloc(3)), (b[0] = 0xd1), b.writeInt16BE(Number(v), 1);
      else if (v >= -(2n ** 31n)) (b = Buffer.alloc(5)), (b[0] = 0xd2), b.writeInt32BE(Number(v), 1);
      else (b = Buffer.alloc(9)), (b[0] = 0xd3), b.writeBigInt64BE(v, 1);
      out.push(b);
      return;
    }
    case "str": {
      const b = Buffer.from(x.v, "utf8");
      header(out, 0xa0, 31, [[0xd9, 1, 0xff], [0xda, 2, 0xffff], [0xdb, 4, 0xffffffff]], b.length);
      out.push(b);
      return;
    }
    case "bin":
      header(out, null, -1, [[0xc4, 1, 0xff], [0xc5, 2, 0xffff], [0xc6, 4, 0xffffffff]], x.v.length);
      out.push(Buffer.from(x.v));
      return;
    case "array":
      header(out, 0x90, 15, [[0xdc, 2, 0xffff], [0xdd, 4, 0xffffffff]], x.v.length);
      for (const item of x.v) encodeInto(item, out);
      return;
    case "map": {
      const entries = x.v.map((e) => ({ ...e, kb: Buffer.from(e.k, "utf8") }));
      entries.sort((a, b) => Buffer.compare(a.kb, b.kb));
      for (let i = 1; i < entries.length; i++) {
        if (entries[i - 1].kb.equals(entries[i].kb)) throw new ProtoError("duplicate_key", `cannot encode key ${entries[i].k} twice`);
      }
      header(out, 0x80, 15, [[0xde, 2, 0xffff], [0xdf, 4, 0xffffffff]], entries.length);
      for (const e of entries) {
        encodeInto(mkStr(e.k), out);
        encodeInto(e.v, out);
      }
      return;
    }
    default:
      throw new CheckError(`cannot encode value of type ${x.t}`);
  }
}

/** Typed JSON of §13.2 -> value. */
function fromTyped(j) {
  const keys = Object.keys(j);
  expect(keys.length === 1, `typed JSON with keys ${keys}`);
  const [t] = keys;
  const x = j[t];
  switch (t) {
    case "nil":
      expect(x === null, "nil must be null");
      return { t: "nil" };
    case "bool":
      expect(typeof x === "boolean", "bool must be boolean");
      return { t: "bool", v: x };
    case "int":
      expect(typeof x === "string" && /^-?(0|[1-9][0-9]*)$/.test(x), `int must be a decimal string: ${x}`);
      return mkInt(BigInt(x));
    case "str":
      return mkStr(x);
    case "bin":
      return mkBin(unhex(x));
    case "array":
      return { t: "array", v: x.map(fromTyped) };
    case "map":
      return { t: "map", v: x.map(([k, v]) => ({ k, kb: Buffer.from(k, "utf8"), v: fromTyped(v) })) };
    default:
      throw new CheckError(`unknown typed JSON tag ${t}`);
  }
}
/** value -> typed JSON of §13.2. */
function toTyped(v) {
  switch (v.t) {
    case "nil":
      return { nil: null };
    case "bool":
      return { bool: v.v };
    case "int":
      return { int: v.v.toString() };
    case "str":
      return { str: v.v };
    case "bin":
      return { bin: hex(v.v) };
    case "array":
      return { array: v.v.map(toTyped) };
    case "map":
      return { map: v.v.map((e) => [e.k, toTyped(e.v)]) };
    default:
      throw new CheckError(`bad value ${v.t}`);
  }
}

const mapKeys = (m) => m.v.map((e) => e.k);
const mget = (m, k) => {
  const e = m.v.find((x) => x.k === k);
  return e === undefined ? undefined : e.v;
};
const num = (v) => Number(v.v); // ints are within ±(2^53-1), so exact

// ---------------------------------------------------------------------------
// Key logs (§4)
// ---------------------------------------------------------------------------

const EVENT_FIELDS = {
  "key.inception": ["created", "next", "officers", "op", "pos", "threshold", "type", "v"],
  "key.delegation": ["created", "node", "op", "pos", "prev", "seal", "type", "v"],
  "key.rotation": ["created", "next", "node", "officers", "op", "pos", "prev", "seal", "threshold", "type", "v"],
};

const isInt = (v) => v !== undefined && v.t === "int";
const isBin = (v, n) => v !== undefined && v.t === "bin" && v.v.length === n;

/** Parse and check one signed key event (§4.2 single-event rules, §4.4 shape). */
function parseSignedEvent(bytes) {
  const signed = mpDecode(bytes);
  const E = (code, d) => fail(code, d);
  if (signed.t !== "map") E("keylog_bad_event", "signed event is not a map");
  const sk = mapKeys(signed).join(",");
  if (sk !== "event,sigs") E("keylog_bad_event", `signed event keys ${sk}`);
  const ev = mget(signed, "event");
  const sigsV = mget(signed, "sigs");
  if (ev.t !== "map") E("keylog_bad_event", "event is not a map");

  // Rule 1: type, field set, v.
  const typeV = mget(ev, "type");
  if (typeV === undefined || typeV.t !== "str" || !(typeV.v in EVENT_FIELDS)) E("keylog_bad_event", "bad event type");
  const type = typeV.v;
  const want = EVENT_FIELDS[type];
  const have = mapKeys(ev); // already sorted, canonical
  if (have.join(",") !== [...want].sort().join(",")) E("keylog_bad_event", `fields ${have} for ${type}`);
  if (!isInt(mget(ev, "v")) || mget(ev, "v").v !== 1n) E("keylog_bad_event", "v is not 1");
  // Rule 2: position.
  const posV = mget(ev, "pos");
  if (!isInt(posV)) E("keylog_bad_event", "pos is not an int");
  const pos = num(posV);
  if (type === "key.inception" ? pos !== 0 : pos < 1) E("keylog_bad_position", `pos ${pos} for ${type}`);
  // Rule 3: field types.
  const created = mget(ev, "created");
  if (!isInt(created) || created.v < 0n) E("keylog_bad_event", "created");
  if (!isBin(mget(ev, "op"), 32)) E("keylog_bad_event", "op is not bin 32");
  const out = { type, pos, op: mget(ev, "op").v, ev };
  if (type !== "key.inception") {
    if (!isBin(mget(ev, "node"), 32)) E("keylog_bad_event", "node is not bin 32");
    if (!isBin(mget(ev, "prev"), 32)) E("keylog_bad_event", "prev is not bin 32");
    const seal = mget(ev, "seal");
    if (!isInt(seal) || seal.v < 0n) E("keylog_bad_event", "seal");
    out.node = mget(ev, "node").v;
    out.prev = mget(ev, "prev").v;
    out.seal = num(seal);
  } else {
    out.seal = 0;
  }
  if (type !== "key.delegation") {
    const keyList = (name) => {
      const a = mget(ev, name);
      if (a.t !== "array" || a.v.length < 1 || a.v.length > 16) E("keylog_bad_event", `${name} is not an array of 1-16`);
      for (const k of a.v) if (!isBin(k, 32)) E("keylog_bad_event", `${name} item is not bin 32`);
      const hs = a.v.map((k) => hex(k.v));
      if (new Set(hs).size !== hs.length) E("keylog_duplicate_key", `${name} lists a key twice`);
      return a.v.map((k) => k.v);
    };
    out.officers = keyList("officers");
    const th = mget(ev, "threshold");
    if (!isInt(th)) E("keylog_bad_event", "threshold is not an int");
    out.next = keyList("next");
    // Rule 4
    out.threshold = num(th);
    if (out.threshold < 1 || out.threshold > out.officers.length) {
      E("keylog_bad_threshold", `threshold ${out.threshold} of ${out.officers.length} officers`);
    }
    if (out.next.length < out.threshold) E("keylog_bad_threshold", `${out.next.length} commitments < threshold ${out.threshold}`);
    // Rule 5
    if (out.officers.some((k) => k.equals(out.op))) E("keylog_bad_event", "op is an officer key");
  }
  // §4.4 sigs
  if (sigsV.t !== "array" || sigsV.v.length < 1 || sigsV.v.length > 16) E("keylog_bad_event", "sigs is not an array of 1-16");
  out.sigs = sigsV.v.map((s) => {
    if (s.t !== "array" || s.v.length !== 2 || !isInt(s.v[0]) || !isBin(s.v[1], 64)) E("keylog_bad_event", "sig entry is not [int, bin 64]");
    return { index: num(s.v[0]), sig: s.v[1].v };
  });
  out.eventBytes = mpEncode(ev);
  out.digest = sha256(out.eventBytes);
  return out;
}

/** §4.4: signatures in ascending index order, every one verifying, at least `required`. */
function checkEventSignatures(e, signers, required) {
  const msg = Buffer.concat([KEYEVENT_PREFIX, e.digest]);
  let prev = null;
  for (const { index, sig } of e.sigs) {
    if (prev !== null && index === prev) fail("keylog_duplicate_signature", `index ${index} twice`);
    if (prev !== null && index < prev) fail("keylog_bad_event", `index ${index} after ${prev}`);
    if (index < 0 || index >= signers.length) fail("keylog_bad_signature", `index ${index} outside ${signers.length} signers`);
    if (!ed25519Verify(signers[index], msg, sig)) fail("keylog_bad_signature", `signature ${index} does not verify`);
    prev = index;
  }
  if (e.sigs.length < required) fail("keylog_threshold_not_met", `${e.sigs.length} signers < ${required}`);
}

/** Key state (§4.5). */
function newKeyState(inception) {
  return {
    nodeId: inception.digest,
    events: [inception],
    officers: inception.officers,
    threshold: inception.threshold,
    next: inception.next,
  };
}
const headOf = (st) => st.events[st.events.length - 1];

/** Add one signed event to `st` (null = nothing known yet) by §4.6; returns the state. */
function applyEvent(st, e) {
  if (st === null) {
    if (e.type !== "key.inception") fail("keylog_bad_position", "log does not start with an inception");
    checkEventSignatures(e, e.officers, e.threshold);
    return newKeyState(e);
  }
  const head = headOf(st);
  if (e.pos <= head.pos) {
    // Rule 1: an event at a held position must be the held one; it is then ignored.
    if (!st.events[e.pos].digest.equals(e.digest)) fail("keylog_duplicity", `two different events at position ${e.pos}`);
    return st;
  }
  if (e.pos !== head.pos + 1) fail("keylog_bad_position", `position ${e.pos} after head ${head.pos}`);
  if (!e.node.equals(st.nodeId)) fail("keylog_wrong_node", "event names another node");
  if (!e.prev.equals(head.digest)) fail("keylog_broken_chain", `prev ${hex(e.prev)} != head digest ${hex(head.digest)}`);
  if (e.seal < head.seal) fail("keylog_bad_event", `seal ${e.seal} lower than previous ${head.seal}`);
  if (e.type === "key.delegation") {
    checkEventSignatures(e, st.officers, st.threshold);
  } else {
    const committed = new Set(st.next.map(hex));
    for (const k of e.officers) {
      if (!committed.has(hex(sha256(k)))) fail("keylog_commitment_mismatch", `officer ${hex(k)} was not committed`);
    }
    checkEventSignatures(e, e.officers, Math.max(st.threshold, e.threshold));
  }
  const ns = { ...st, events: [...st.events, e] };
  if (e.type === "key.rotation") Object.assign(ns, { officers: e.officers, threshold: e.threshold, next: e.next });
  return ns;
}

/** Verify a log from its inception. */
function verifyLog(hexList, st = null) {
  for (const h of hexList) st = applyEvent(st, parseSignedEvent(unhex(h)));
  if (st === null) fail("keylog_bad_position", "empty log");
  return st;
}

/** A peer presents its whole log on top of a held state (§4.6 rule 3). */
function presentWholeLog(st, hexList) {
  const events = hexList.map((h) => parseSignedEvent(unhex(h)));
  if (events.length === 0 || events[0].type !== "key.inception") fail("keylog_bad_position", "whole log does not start with an inception");
  const heldHead = headOf(st).pos;
  for (const e of events) st = applyEvent(st, e);
  const lastPresented = events[events.length - 1].pos;
  if (lastPresented < heldHead) fail("keylog_rollback", `presented log ends at ${lastPresented}, held head ${heldHead}`);
  return st;
}

// ---------------------------------------------------------------------------
// Envelopes (§5, §6) and message bodies (§7, §8)
// ---------------------------------------------------------------------------

const ENV_FIELDS = ["v", "type", "origin", "kpos", "seq", "prev", "created", "expires", "aud", "crit", "body"];
const RESERVED_ROOTS = new Set(["node", "peer", "call", "decision", "coalition", "key", "tadamun"]);
const TYPE_RE = /^[a-z0-9-]+(\.[a-z0-9_-]+)+$/;
const AUD_RE = /^(public|allies|coalition:[0-9a-f]{64}|node:[0-9a-f]{64})$/;

const BODY_FIELDS = {
  "node.descriptor": ["name", "endpoints", "langs", "caps", "about", "region"],
  "peer.introduce": ["inviter", "invite", "proof", "endpoint"],
  "peer.alliance": ["peer", "state"],
  "decision.outcome": [
    "proposal", "title", "method", "fraction", "quorum", "ballot", "electorate", "turnout",
    "options", "counts", "abstain", "blocks", "outcome", "winner", "opened", "closed",
  ],
  "call.issue": ["kind", "title", "text", "starts", "ends", "location", "sectors", "regions", "threshold"],
  "call.amend": ["call", "title", "text", "starts", "ends", "location", "sectors", "regions"],
  "call.cancel": ["call", "reason"],
  "call.update": ["call", "text"],
  "call.conclude": ["call", "outcome", "text"],
  "call.endorse": ["call", "decision", "note"],
  "call.decline": ["call", "decision", "note"],
  "call.tally": ["call", "seq", "firm", "conditional", "bucket", "k"],
  "call.activate": ["call", "tallies", "pledges", "orgs"],
  "coalition.found": ["coalition", "salt", "name", "purpose"],
  "coalition.invite": ["coalition", "invitee", "founder", "salt", "name", "purpose", "members", "invites"],
  "coalition.join": ["coalition", "invite"],
  "coalition.leave": ["coalition"],
};

const bad = (d) => fail("invalid_field", d);

/** §5.1 + §5.2 + §5.3: the "decode" stage. */
function decodeEnvelope(bytes) {
  const w = mpDecode(bytes);
  if (w.t !== "map") fail("malformed", "envelope is not a map");
  const keys = mapKeys(w);
  for (const k of keys) if (!["env", "relay", "sig"].includes(k)) fail("malformed", `unexpected key ${k}`);
  if (!keys.includes("env") || !keys.includes("sig")) fail("malformed", "env or sig missing");
  const env = mget(w, "env");
  const sig = mget(w, "sig");
  if (env.t !== "map") bad("env is not a map");
  if (!isBin(sig, 64)) bad("sig is not bin 64");
  const relay = mget(w, "relay");
  if (relay !== undefined) {
    if (relay.t !== "map" || mapKeys(relay).join(",") !== "path") bad("relay is not {path}");
    const p = mget(relay, "path");
    if (p.t !== "array" || p.v.length < 1 || p.v.length > 16 || !p.v.every((x) => isBin(x, 32))) bad("relay.path");
  }

  const f = {};
  const get = (name, required) => {
    const v = mget(env, name);
    if (v === undefined && required) fail("missing_field", `envelope field ${name}`);
    return v;
  };
  // v (checked first)
  const v = get("v", true);
  if (!isInt(v)) bad("v is not an int");
  if (v.v !== 1n) fail("unsupported_version", `v = ${v.v}`);
  // type
  const type = get("type", true);
  if (type.t !== "str") bad("type is not a str");
  if (type.b.length > 128) fail("too_long", "type over 128 bytes");
  if (!TYPE_RE.test(type.v)) bad(`type ${type.v} not in the grammar`);
  const parts = type.v.split(".");
  if (!RESERVED_ROOTS.has(parts[0]) && parts.length < 3) bad(`extension type ${type.v} without a reverse-DNS prefix`);
  f.type = type.v;
  const origin = get("origin", true);
  if (!isBin(origin, 32)) bad("origin is not bin 32");
  f.origin = origin.v;
  const kpos = get("kpos", true);
  if (!isInt(kpos) || kpos.v < 0n) bad("kpos");
  f.kpos = num(kpos);
  const seq = get("seq", true);
  if (!isInt(seq) || seq.v < 1n) bad("seq");
  f.seq = num(seq);
  const prev = get("prev", false);
  if (f.seq > 1 && prev === undefined) bad("prev absent with seq > 1");
  if (f.seq === 1 && prev !== undefined) bad("prev present with seq = 1");
  if (prev !== undefined && !isBin(prev, 32)) bad("prev is not bin 32");
  const created = get("created", true);
  if (!isInt(created) || created.v < 0n) bad("created");
  f.created = num(created);
  const expires = get("expires", false);
  if (expires !== undefined && (!isInt(expires) || expires.v <= created.v)) bad("expires");
  f.expires = expires === undefined ? undefined : num(expires);
  const aud = get("aud", true);
  if (aud.t !== "str") bad("aud is not a str");
  if (aud.b.length > 80) fail("too_long", "aud over 80 bytes");
  if (!AUD_RE.test(aud.v)) bad(`aud ${aud.v} not in the grammar`);
  f.aud = aud.v;
  const crit = get("crit", false);
  if (crit !== undefined) {
    if (crit.t !== "array" || crit.v.length < 1 || crit.v.length > 16 || !crit.v.every((x) => x.t === "str")) bad("crit");
    for (let i = 1; i < crit.v.length; i++) {
      if (Buffer.compare(crit.v[i - 1].b, crit.v[i].b) >= 0) bad("crit not sorted and distinct");
    }
  }
  const body = get("body", true);
  if (body.t !== "map") bad("body is not a map");
  f.body = body;
  // crit semantics (§5.3), after the table
  if (crit !== undefined) {
    const understoodBody = BODY_FIELDS[f.type] || [];
    for (const { v: name } of crit.v) {
      const isBody = name.startsWith("body.");
      const field = isBody ? name.slice(5) : name;
      const present = mget(isBody ? body : env, field) !== undefined;
      if (!present) bad(`crit names absent field ${name}`);
      const understood = isBody ? understoodBody.includes(field) : ENV_FIELDS.includes(field);
      if (!understood) fail("unknown_critical", `crit field ${name} not understood`);
    }
  }
  const envBytes = mpEncode(env);
  return { wire: w, env, envBytes, sig: sig.v, f };
}

/** §6.3: the "verify" stage. */
function verifyEnvelope(d, st, now) {
  const { f } = d;
  if (!f.origin.equals(st.nodeId)) fail("origin_mismatch", "origin is not the key log's node");
  const headPos = headOf(st).pos;
  if (f.kpos > headPos) fail("key_position_unknown", `kpos ${f.kpos} > head ${headPos}`);
  if (f.kpos < headPos) {
    const seal = st.events[f.kpos + 1].seal;
    if (f.seq > seal) fail("key_revoked", `seq ${f.seq} > seal ${seal} of position ${f.kpos + 1}`);
  }
  if (f.created > now + 300) fail("from_future", `created ${f.created} > now + 300`);
  if (f.expires !== undefined && !(f.expires > now)) fail("expired", `expires ${f.expires} <= now ${now}`);
  const id = sha256(d.envBytes);
  const op = st.events[f.kpos].op;
  if (!ed25519Verify(op, Buffer.concat([ENVELOPE_PREFIX, id]), d.sig)) fail("bad_signature", "envelope signature");
  return id;
}

// --- §7.1 field types -------------------------------------------------------

const LANG_RE = /^[a-z]{2,3}(-[a-z0-9]{2,8})*$/;
const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const URL_RE = /^https?:\/\/[^\s/?#]+(\/[^\s]*)?$/;

const T = {
  id: (v, n) => (isBin(v, 32) ? v.v : bad(`${n} is not an id`)),
  bin: (len) => (v, n) => (isBin(v, len) ? v.v : bad(`${n} is not bin ${len}`)),
  int: (lo, hi) => (v, n) => {
    if (!isInt(v)) bad(`${n} is not an int`);
    const x = num(v);
    if (x < lo || x > hi) bad(`${n} = ${x} outside ${lo}..${hi}`);
    return x;
  },
  str: (maxBytes, { nonEmpty = false } = {}) => (v, n) => {
    if (v === undefined || v.t !== "str") bad(`${n} is not a str`);
    if (v.b.length > maxBytes) fail("too_long", `${n} over ${maxBytes} bytes`);
    if (nonEmpty && v.b.length === 0) bad(`${n} is empty`);
    return v.v;
  },
  enum: (set) => (v, n) => {
    if (v === undefined || v.t !== "str" || !set.includes(v.v)) bad(`${n} not one of ${set}`);
    return v.v;
  },
  re: (re, maxBytes) => (v, n) => {
    const s = T.str(maxBytes)(v, n);
    if (!re.test(s)) bad(`${n} = ${JSON.stringify(s)} not in the grammar`);
    return s;
  },
  array: (item, min, max, distinct) => (v, n) => {
    if (v === undefined || v.t !== "array") bad(`${n} is not an array`);
    if (v.v.length < min || v.v.length > max) bad(`${n} has ${v.v.length} items, not ${min}..${max}`);
    if (distinct) {
      const seen = new Set(v.v.map((x) => hex(mpEncode(x))));
      if (seen.size !== v.v.length) bad(`${n} repeats an item`);
    }
    return v.v.map((x, i) => item(x, `${n}[${i}]`));
  },
  map: (fields, check) => (v, n) => {
    if (v === undefined || v.t !== "map") bad(`${n} is not a map`);
    const out = parseFields(v, fields, `${n}.`);
    if (check) check(out, n);
    return out;
  },
};
const MAX = Number.MAX_SAFE_INTEGER;
T.time = T.int(0, MAX);
T.count = T.int(0, MAX);
T.lang = T.re(LANG_RE, Infinity);
T.text = (N) => (v, n) => {
  if (v === undefined || v.t !== "map") bad(`${n} is not a text map`);
  if (v.v.length < 1 || v.v.length > 16) bad(`${n} has ${v.v.length} languages`);
  const out = {};
  for (const e of v.v) {
    if (!LANG_RE.test(e.k)) bad(`${n} language tag ${JSON.stringify(e.k)}`);
    out[e.k] = T.str(N, { nonEmpty: true })(e.v, `${n}.${e.k}`);
  }
  return out;
};
T.title = T.text(512);
T.longText = T.text(16384);
T.tag = (v, n) => {
  const s = T.str(64)(v, n);
  if (s.length < 1 || !TAG_RE.test(s)) bad(`${n} = ${JSON.stringify(s)} is not a tag`);
  return s;
};
T.tags = T.array(T.tag, 0, 32, true);
T.url = T.re(URL_RE, 512);
T.ratio = T.map(
  [
    ["num", true, T.int(0, MAX)],
    ["den", true, T.int(1, 1000000)],
  ],
  (r, n) => r.num <= r.den || bad(`${n}: num > den`),
);

/** Parse a body map by a list of [name, required, type]; unknown fields are ignored (§7.2). */
function parseFields(map, fields, prefix = "") {
  const out = {};
  for (const [name, required, type] of fields) {
    const v = mget(map, name);
    if (v === undefined) {
      if (required) fail("missing_field", `${prefix}${name}`);
      continue;
    }
    out[name] = type(v, `${prefix}${name}`); // nil fails every type: invalid_field
  }
  return out;
}

const METHODS = ["majority", "supermajority", "consent"];
const location = T.map([
  ["region", true, T.tag],
  ["place", false, T.str(200)],
]);
const threshold = T.map([
  ["pledges", true, T.int(1, MAX)],
  ["orgs", true, T.int(1, 256)],
  ["deadline", true, T.time],
]);
const decisionSummary = T.map(
  [
    ["by", true, T.enum(["admins", "organisers", "vote"])],
    ["method", false, T.enum(METHODS)],
    ["electorate", true, T.count],
    ["turnout", true, T.count],
    ["yes", true, T.count],
    ["no", true, T.count],
    ["abstain", false, T.count],
    ["blocks", false, T.count],
    ["decision", false, T.id],
  ],
  (d, n) => {
    if ((d.by === "vote") !== (d.method !== undefined)) bad(`${n}.method present exactly when by is vote`);
    if (d.turnout > d.electorate) bad(`${n}.turnout > electorate`);
    if (d.turnout !== d.yes + d.no + (d.abstain ?? 0) + (d.blocks ?? 0)) bad(`${n}.turnout is not the sum`);
  },
);
const callFields = [
  ["title", false, T.title],
  ["text", false, T.longText],
  ["starts", false, T.time],
  ["ends", false, T.time],
  ["location", false, location],
  ["sectors", false, T.tags],
  ["regions", false, T.tags],
];
const startsEnds = (b) => {
  if (b.starts !== undefined && b.ends !== undefined && b.ends < b.starts) bad("ends < starts");
};

const BODY_PARSERS = {
  "node.descriptor": (b) =>
    parseFields(b, [
      ["name", true, T.title],
      ["endpoints", true, T.array(T.url, 1, 8, true)],
      ["langs", false, T.array(T.lang, 0, 16, true)],
      ["caps", false, T.tags],
      ["about", false, T.longText],
      ["region", false, T.tag],
    ]),
  "peer.introduce": (b) =>
    parseFields(b, [
      ["inviter", true, T.id],
      ["invite", true, T.bin(16)],
      ["proof", true, T.bin(32)],
      ["endpoint", true, T.url],
    ]),
  "peer.alliance": (b) =>
    parseFields(b, [
      ["peer", true, T.id],
      ["state", true, T.enum(["allied", "ended"])],
    ]),
  "decision.outcome": (b) => {
    const d = parseFields(b, [
      ["proposal", true, T.bin(16)],
      ["title", true, T.title],
      ["method", true, T.enum(METHODS)],
      ["fraction", false, T.ratio],
      ["quorum", true, T.ratio],
      ["ballot", true, T.enum(["open", "secret"])],
      ["electorate", true, T.count],
      ["turnout", true, T.count],
      ["options", true, T.array(T.str(512), 1, 64, true)],
      ["counts", true, T.array(T.count, 1, 64, false)],
      ["abstain", false, T.count],
      ["blocks", false, T.count],
      ["outcome", true, T.enum(["adopted", "rejected", "no_quorum"])],
      ["winner", false, T.int(0, MAX)],
      ["opened", true, T.time],
      ["closed", true, T.time],
    ]);
    if ((d.method === "supermajority") !== (d.fraction !== undefined)) bad("fraction present exactly for supermajority");
    if (d.turnout > d.electorate) bad("turnout > electorate");
    if (d.counts.length !== d.options.length) bad("one count per option");
    const sum = d.counts.reduce((a, x) => a + x, 0) + (d.abstain ?? 0) + (d.blocks ?? 0);
    if (d.turnout !== sum) bad(`turnout ${d.turnout} != ${sum}`);
    if (d.winner !== undefined && d.winner >= d.options.length) bad("winner is not an option index");
    if (d.closed < d.opened) bad("closed < opened");
    return d;
  },
  "call.issue": (b) => {
    const d = parseFields(b, [
      ["kind", true, T.enum(["strike", "demonstration", "boycott", "petition", "solidarity", "meeting"])],
      ["title", true, T.title],
      ["text", true, T.longText],
      ...callFields.slice(2),
      ["threshold", false, threshold],
    ]);
    startsEnds(d);
    return d;
  },
  "call.amend": (b) => {
    const d = parseFields(b, [["call", true, T.id], ...callFields]);
    if (Object.keys(d).length < 2) bad("call.amend changes nothing");
    startsEnds(d);
    return d;
  },
  "call.cancel": (b) =>
    parseFields(b, [
      ["call", true, T.id],
      ["reason", false, T.longText],
    ]),
  "call.update": (b) =>
    parseFields(b, [
      ["call", true, T.id],
      ["text", true, T.longText],
    ]),
  "call.conclude": (b) =>
    parseFields(b, [
      ["call", true, T.id],
      ["outcome", true, T.enum(["held", "partial", "called_off"])],
      ["text", false, T.longText],
    ]),
  "call.endorse": (b) =>
    parseFields(b, [
      ["call", true, T.id],
      ["decision", true, decisionSummary],
      ["note", false, T.longText],
    ]),
  "call.tally": (b) => {
    const d = parseFields(b, [
      ["call", true, T.id],
      ["seq", true, T.int(1, MAX)],
      ["firm", true, T.count],
      ["conditional", true, T.count],
      ["bucket", true, T.int(1, 1000)],
      ["k", true, T.int(1, 1000)],
    ]);
    for (const n of ["firm", "conditional"]) {
      if (d[n] % d.bucket !== 0) bad(`${n} not a multiple of bucket`);
      if (d[n] !== 0 && d[n] < d.k) bad(`${n} = ${d[n]} below k = ${d.k}`);
    }
    return d;
  },
  "call.activate": (b) => {
    const d = parseFields(b, [
      ["call", true, T.id],
      ["tallies", true, T.array(T.id, 1, 256, true)],
      ["pledges", true, T.int(1, MAX)],
      ["orgs", true, T.int(1, MAX)],
    ]);
    for (let i = 1; i < d.tallies.length; i++) {
      if (Buffer.compare(d.tallies[i - 1], d.tallies[i]) >= 0) bad("tallies not ascending");
    }
    if (d.orgs > d.tallies.length) bad("orgs > number of tallies");
    return d;
  },
};
BODY_PARSERS["call.decline"] = BODY_PARSERS["call.endorse"];

// --- §15 coalitions ----------------------------------------------------------

const COALITION_DOMAIN = Buffer.from("TADAMUN-COALITION-V1\0", "ascii");
const coalitionId = (founder, salt) => sha256(Buffer.concat([COALITION_DOMAIN, founder, salt]));
const coalitionMember = T.map([
  ["node", true, T.id],
  ["since", true, T.int(1, MAX)],
]);
const openInvite = T.map([
  ["invite", true, T.id],
  ["invitee", true, T.id],
  ["created", true, T.time],
]);
const distinctBy = (items, key, n) => {
  const seen = new Set(items.map((x) => hex(x[key])));
  if (seen.size !== items.length) bad(`${n}: a ${key} is listed twice`);
};
BODY_PARSERS["coalition.found"] = (b) =>
  parseFields(b, [
    ["coalition", true, T.id],
    ["salt", true, T.bin(32)],
    ["name", true, T.title],
    ["purpose", false, T.longText],
  ]);
BODY_PARSERS["coalition.invite"] = (b) => {
  const d = parseFields(b, [
    ["coalition", true, T.id],
    ["invitee", true, T.id],
    ["founder", true, T.id],
    ["salt", true, T.bin(32)],
    ["name", true, T.title],
    ["purpose", false, T.longText],
    ["members", true, T.array(coalitionMember, 1, 256, false)],
    ["invites", false, T.array(openInvite, 0, 256, false)],
  ]);
  if (!d.coalition.equals(coalitionId(d.founder, d.salt))) bad("coalition is not H(domain || founder || salt)");
  distinctBy(d.members, "node", "members");
  distinctBy(d.invites ?? [], "invite", "invites");
  if (d.members.some((m) => m.node.equals(d.invitee))) bad("the invitee is a member already");
  return d;
};
BODY_PARSERS["coalition.join"] = (b) =>
  parseFields(b, [
    ["coalition", true, T.id],
    ["invite", true, T.id],
  ]);
BODY_PARSERS["coalition.leave"] = (b) => parseFields(b, [["coalition", true, T.id]]);

/** §15.2: the "coalition" stage, for coalition.* types after their body parsed. */
function checkCoalition(d) {
  if (!d.f.type.startsWith("coalition.")) return null;
  const body = BODY_PARSERS[d.f.type](d.f.body);
  if (d.f.aud !== `coalition:${hex(body.coalition)}`) bad("aud is not the body's coalition");
  if (d.f.type === "coalition.found" && !body.coalition.equals(coalitionId(d.f.origin, body.salt))) {
    bad("a found's coalition is not H(domain || origin || salt)");
  }
  if (d.f.type === "coalition.invite") {
    const own = body.members.find((m) => m.node.equals(d.f.origin));
    if (own === undefined || own.since >= d.f.seq) bad("the inviter is not a member from before its invite");
  }
  return body;
}

/** §8: the "parse" stage. Returns null for extension types (verified, not parsed). */
function parseBody(d) {
  const root = d.f.type.split(".")[0];
  if (!RESERVED_ROOTS.has(root)) return null;
  const p = BODY_PARSERS[d.f.type];
  if (p === undefined) fail("unknown_type", `core type ${d.f.type}`);
  return p(d.f.body);
}

// ---------------------------------------------------------------------------
// HTTP message signatures (§10)
// ---------------------------------------------------------------------------

class SfError extends Error {}
const sfFail = (msg) => {
  throw new SfError(msg);
};
const SIG_PARAMS = { created: "int", expires: "int", nonce: "str", keyid: "str", alg: "str", tag: "str" };

/** §10.3 dictionary subset. kind: "inner-list" (Signature-Input) or "byte-seq". */
function parseDictionary(s, kind) {
  let i = 0;
  const out = new Map();
  const peek = () => s[i];
  const isLc = (c) => c >= "a" && c <= "z";
  const isDigit = (c) => c >= "0" && c <= "9";
  const parseKey = () => {
    const c = peek();
    if (c === undefined || !(isLc(c) || c === "*")) sfFail(`bad key start at ${i}`);
    const st = i++;
    while (i < s.length && (isLc(s[i]) || isDigit(s[i]) || "_-.*".includes(s[i]))) i++;
    return s.slice(st, i);
  };
  const parseString = () => {
    if (peek() !== '"') sfFail(`expected string at ${i}`);
    i++;
    let v = "";
    for (;;) {
      if (i >= s.length) sfFail("unterminated string");
      const c = s[i];
      if (c === "\\") {
        const n = s[i + 1];
        if (n !== '"' && n !== "\\") sfFail(`bad escape at ${i}`);
        v += n;
        i += 2;
        continue;
      }
      if (c === '"') {
        i++;
        return v;
      }
      const cc = c.charCodeAt(0);
      if (cc < 0x20 || cc > 0x7e) sfFail(`bad string char at ${i}`);
      v += c;
      i++;
    }
  };
  const parseInteger = () => {
    const st = i;
    if (peek() === "-") i++;
    const ds = i;
    while (i < s.length && isDigit(s[i])) i++;
    const n = i - ds;
    if (n < 1 || n > 15) sfFail(`bad integer at ${st}`);
    if (s[i] === ".") sfFail("decimal not accepted");
    return Number(s.slice(st, i)); // leading zeros parse (§10.3)
  };
  const parseParams = () => {
    const params = [];
    while (peek() === ";") {
      i++;
      while (peek() === " ") i++;
      const k = parseKey();
      if (peek() !== "=") sfFail(`parameter ${k} without a value`);
      i++;
      const v = peek() === '"' ? parseString() : parseInteger();
      if (params.some(([n]) => n === k)) sfFail(`parameter ${k} twice`);
      params.push([k, v]);
    }
    return params;
  };
  const parseInnerList = () => {
    if (peek() !== "(") sfFail(`expected ( at ${i}`);
    i++;
    while (peek() === " ") i++;
    const items = [];
    for (;;) {
      if (peek() === ")") {
        i++;
        break;
      }
      items.push(parseString());
      const sp = i;
      while (peek() === " ") i++;
      if (peek() !== ")" && i === sp) sfFail(`expected SP or ) at ${i}`);
    }
    return { items, params: parseParams() };
  };
  const parseByteSeq = () => {
    if (peek() !== ":") sfFail(`expected : at ${i}`);
    const st = ++i;
    while (i < s.length && /[A-Za-z0-9+/=]/.test(s[i])) i++;
    if (peek() !== ":") sfFail("unterminated byte sequence");
    const text = s.slice(st, i++);
    const bytes = Buffer.from(text, "base64");
    if (bytes.toString("base64") !== text) sfFail("non-canonical base64");
    return bytes;
  };

  while (peek() === " ") i++;
  for (;;) {
    const key = parseKey();
    if (peek() !== "=") sfFail(`member ${key} without a value`);
    i++;
    const value = kind === "inner-list" ? parseInnerList() : parseByteSeq();
    if (out.has(key)) sfFail(`member ${key} twice`);
    out.set(key, value);
    let j = i;
    while (s[j] === " " || s[j] === "\t") j++;
    if (j === s.length) {
      if (!/^ *$/.test(s.slice(i))) sfFail("trailing HTAB");
      break;
    }
    if (s[j] !== ",") sfFail(`expected , at ${j}`);
    i = j + 1;
    while (s[i] === " " || s[i] === "\t") i++;
  }
  if (kind === "inner-list") {
    for (const [label, { params }] of out) {
      for (const [k, v] of params) {
        const t = SIG_PARAMS[k];
        if (t === undefined) sfFail(`${label}: unknown parameter ${k}`);
        if (t === "int" && (typeof v !== "number" || v < 0 || v > 999999999999999)) sfFail(`${label}: ${k} not an integer 0..999999999999999`);
        if (t === "str" && typeof v !== "string") sfFail(`${label}: ${k} not a string`);
      }
    }
  }
  return out;
}

/** Header lookup: case-insensitive; the same name twice is an error. */
function headerValues(headers, name) {
  return headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}
/** Reading a field (§10.3): once only, trimmed of SP/HTAB, printable ASCII or HTAB. */
function oneHeader(headers, name, codeIfTwice) {
  const vs = headerValues(headers, name);
  if (vs.length > 1) fail(codeIfTwice, `${name} given twice`);
  if (vs.length === 0) return undefined;
  const value = vs[0].replace(/^[ \t]+|[ \t]+$/g, "");
  if (!/^[\x20-\x7e\t]*$/.test(value)) fail("httpsig_malformed", `${name} is not printable ASCII`);
  return value;
}

/** §10.4 target URI rules; returns its parts. */
function parseTargetUri(u) {
  const M = (d) => fail("httpsig_malformed", `target URI: ${d}`);
  if (!/^[\x21-\x7e]+$/.test(u)) M("not visible ASCII");
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/.exec(u);
  if (!m) M("not an absolute http(s) URI");
  const scheme = m[1].toLowerCase();
  if (scheme !== "http" && scheme !== "https") M(`scheme ${scheme}`);
  if (m[5] !== undefined) M("fragment");
  const auth = m[2];
  if (auth.includes("@")) M("userinfo");
  let host;
  let port = null;
  const am = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::([0-9]*))?$/.exec(auth);
  if (!am) M(`authority ${auth}`);
  host = am[1].toLowerCase();
  if (am[2] !== undefined) {
    if (!/^[0-9]+$/.test(am[2])) M("empty port");
    port = Number(am[2]);
    if (port < 1 || port > 65535) M(`port ${port}`);
  }
  const defPort = scheme === "http" ? 80 : 443;
  const authority = port === null || port === defPort ? host : `${host}:${port}`;
  const query = m[4] === undefined ? null : m[4].slice(1);
  return { scheme, authority, path: m[3] === "" ? "/" : m[3], query };
}

const DERIVED = new Set(["@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"]);
const FIELD_NAME_RE = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

function serialiseSfString(s) {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
function serialiseParams(items, params) {
  let out = `(${items.map(serialiseSfString).join(" ")})`;
  for (const [k, v] of params) out += `;${k}=${typeof v === "number" ? String(v) : serialiseSfString(v)}`;
  return out;
}

/** §10.4 signature base. */
function signatureBase(method, uri, headers, items, params) {
  const M = (d) => fail("httpsig_malformed", d);
  const seen = new Set();
  let u = null;
  const lines = [];
  for (const name of items) {
    if (seen.has(name)) M(`component ${name} twice`);
    seen.add(name);
    let value;
    if (name.startsWith("@")) {
      if (!DERIVED.has(name)) M(`component ${name}`);
      u ??= parseTargetUri(uri);
      switch (name) {
        case "@method":
          if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) M("method is not a token");
          value = method;
          break;
        case "@target-uri":
          value = uri;
          break;
        case "@authority":
          value = u.authority;
          break;
        case "@scheme":
          value = u.scheme;
          break;
        case "@path":
          value = u.path;
          break;
        case "@query":
          value = `?${u.query ?? ""}`;
          break;
        case "@request-target":
          value = u.query ? `${u.path}?${u.query}` : u.path;
          break;
      }
    } else {
      if (!FIELD_NAME_RE.test(name)) M(`component ${name}`);
      const v = oneHeader(headers, name, "httpsig_malformed");
      if (v === undefined) M(`covered field ${name} absent`);
      value = v.replace(/^[ \t]+|[ \t]+$/g, "");
      if (!/^[\x20-\x7e\t]*$/.test(value)) M(`field ${name} not printable ASCII`);
    }
    lines.push(`${serialiseSfString(name)}: ${value}\n`);
  }
  const base = `${lines.join("")}"@signature-params": ${serialiseParams(items, params)}`;
  if (!/^[\x20-\x7e\t\n]*$/.test(base)) M("signature base not printable ASCII");
  return Buffer.from(base, "ascii");
}

/** §10.2 Content-Digest check (after presence). */
function checkContentDigest(value, body) {
  let dict;
  try {
    dict = parseDictionary(value, "byte-seq");
  } catch (e) {
    if (e instanceof SfError) fail("httpsig_bad_digest", `Content-Digest does not parse: ${e.message}`);
    throw e;
  }
  const algs = { "sha-256": sha256, "sha-512": sha512 };
  const used = [...dict.keys()].filter((k) => k in algs);
  if (used.length === 0) fail("httpsig_bad_digest", "no sha-256 or sha-512 member");
  for (const k of used) if (!algs[k](body).equals(dict.get(k))) fail("httpsig_bad_digest", `${k} does not match the body`);
}

const PROFILE_COMPONENTS = ["@method", "@target-uri", "content-digest", "tadamun-destination"];
const MAX_SKEW = 60;
const MAX_VALIDITY = 300;

function parseSigFields(headers, label) {
  const si = oneHeader(headers, "signature-input", "httpsig_malformed");
  const sg = oneHeader(headers, "signature", "httpsig_malformed");
  let siD;
  let sgD;
  try {
    siD = parseDictionary(si, "inner-list");
    sgD = parseDictionary(sg, "byte-seq");
  } catch (e) {
    if (e instanceof SfError) fail("httpsig_malformed", e.message);
    throw e;
  }
  if (!siD.has(label) || !sgD.has(label)) fail("httpsig_malformed", `no member labelled ${label}`);
  return { ...siD.get(label), sig: sgD.get(label) };
}

/** §10.6 steps 1-13. resolve(keyid) -> public key Buffer or undefined. */
function verifyProfileRequest(req, now, ownNodeId, resolve) {
  const { method, url, headers } = req;
  const body = unhex(req.body_hex);
  const required = ["content-digest", "tadamun-destination", "signature-input", "signature"];
  // Step 1 (§10.6): two pairs, each field read (once, trimmed, ASCII), then both present.
  for (const pair of [required.slice(0, 2), required.slice(2)]) {
    const values = pair.map((n) => oneHeader(headers, n, "httpsig_malformed"));
    pair.forEach((n, i) => values[i] === undefined && fail("httpsig_missing", `${n} absent`));
  }
  // Step 2
  const { items, params, sig } = parseSigFields(headers, "tadamun");
  // Step 3
  if (items.join(" ") !== PROFILE_COMPONENTS.join(" ")) fail("httpsig_malformed", `components ${items}`);
  // Step 4
  const p = Object.fromEntries(params);
  for (const n of ["created", "expires", "nonce", "keyid"]) if (!(n in p)) fail("httpsig_malformed", `${n} absent`);
  // Step 5
  if (p.tag !== "tadamun-fed-v1") fail("httpsig_malformed", `tag ${p.tag}`);
  if (p.alg !== "ed25519") fail("httpsig_malformed", `alg ${p.alg}`);
  if (!/^[0-9a-f]{64}$/.test(p.keyid)) fail("httpsig_malformed", "keyid is not a node id");
  // Step 6
  const validity = p.expires - p.created;
  if (!(validity > 0 && validity <= MAX_VALIDITY)) fail("httpsig_malformed", `validity ${validity}`);
  // Steps 7, 8
  if (p.created > now + MAX_SKEW) fail("httpsig_from_future", `created ${p.created} > now ${now} + ${MAX_SKEW}`);
  if (p.expires < now - MAX_SKEW) fail("httpsig_expired", `expires ${p.expires} < now ${now} - ${MAX_SKEW}`);
  // Step 9
  if (!/^[A-Za-z0-9_-]{16,64}$/.test(p.nonce)) fail("httpsig_malformed", `nonce ${p.nonce}`);
  // Step 10
  const dest = oneHeader(headers, "tadamun-destination", "httpsig_malformed").replace(/^[ \t]+|[ \t]+$/g, "");
  if (dest !== ownNodeId) fail("httpsig_wrong_target", `destination ${dest}`);
  // Step 11
  checkContentDigest(oneHeader(headers, "content-digest", "httpsig_malformed"), body);
  // Step 12
  const pk = resolve(p.keyid);
  if (pk === undefined) fail("httpsig_unknown_key", `keyid ${p.keyid}`);
  // Step 13
  const base = signatureBase(method, url, headers, items, params);
  if (sig.length !== 64 || !ed25519Verify(pk, base, sig)) fail("httpsig_bad_signature", "signature does not verify");
  return { keyid: p.keyid, nonce: p.nonce, created: p.created, expires: p.expires, base };
}

/** Generic RFC 9421 verification of one label (§10.3-§10.4 rules) plus Content-Digest. */
function verifyGenericRequest(req, label, resolve) {
  const { method, url, headers } = req;
  const { items, params, sig } = parseSigFields(headers, label);
  const p = Object.fromEntries(params);
  if (p.alg !== undefined && p.alg !== "ed25519") fail("httpsig_malformed", `alg ${p.alg}`);
  const pk = resolve(p.keyid);
  if (pk === undefined) fail("httpsig_unknown_key", `keyid ${p.keyid}`);
  const base = signatureBase(method, url, headers, items, params);
  if (sig.length !== 64 || !ed25519Verify(pk, base, sig)) fail("httpsig_bad_signature", "signature does not verify");
  const cd = oneHeader(headers, "content-digest", "httpsig_malformed");
  if (cd === undefined) fail("httpsig_missing", "Content-Digest absent");
  checkContentDigest(cd, unhex(req.body_hex));
  return { base };
}

/** §10.5 signing; returns the four header values. */
function signRequest(method, url, body, seed, { keyid, destination, created, expires, nonce }) {
  const contentDigest = `sha-256=:${sha256(body).toString("base64")}:`;
  const params = [
    ["created", created],
    ["expires", expires],
    ["nonce", nonce],
    ["keyid", keyid],
    ["alg", "ed25519"],
    ["tag", "tadamun-fed-v1"],
  ];
  const headers = [
    ["Content-Digest", contentDigest],
    ["Tadamun-Destination", destination],
  ];
  const base = signatureBase(method, url, headers, PROFILE_COMPONENTS, params);
  const sig = ed25519Sign(seed, base);
  return {
    "content-digest": contentDigest,
    "tadamun-destination": destination,
    "signature-input": `tadamun=${serialiseParams(PROFILE_COMPONENTS, params)}`,
    signature: `tadamun=:${sig.toString("base64")}:`,
  };
}

// ---------------------------------------------------------------------------
// Test harness
// ---------------------------------------------------------------------------

let totalPassed = 0;
let totalFailed = 0;
const failures = [];

function runCheck(stats, caseName, what, fn) {
  try {
    fn();
    stats.passed++;
    totalPassed++;
    if (VERBOSE) console.log(`  ok   ${caseName} [${what}]`);
  } catch (e) {
    stats.failed++;
    totalFailed++;
    const msg = e instanceof CheckError || e instanceof ProtoError ? e.message : e.stack;
    failures.push(`${stats.file}: ${caseName} [${what}]: ${msg}`);
    console.log(`  FAIL ${caseName} [${what}]: ${msg}`);
  }
}

/** Run fn and expect a ProtoError with `code`. */
function expectCode(code, fn, what = "") {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProtoError) {
      expectEq(e.code, code, `${what}error code (${e.message})`);
      if (VERBOSE) console.log(`       rejected as expected: ${e.message}`);
      return e;
    }
    throw e;
  }
  throw new CheckError(`${what}expected ${code}, but it was accepted`);
}
function expectOk(fn, what) {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ProtoError) throw new CheckError(`${what}: rejected with ${e.message}`);
    throw e;
  }
}

function loadVectors(file) {
  const j = JSON.parse(fs.readFileSync(path.join(VECTOR_DIR, file), "utf8"));
  expect(Array.isArray(j.cases), `${file}: no cases`);
  const names = j.cases.map((c) => c.name);
  expect(new Set(names).size === names.length, `${file}: case names are not unique`);
  return j.cases;
}

/** Item 1 and 2: the library-only checks of §13.1, on every case that has the fields. */
function genericChecks(stats, c, domainPrefix) {
  if (["seed_hex", "public_key_hex", "signing_input_hex", "signature_hex"].every((k) => k in c)) {
    runCheck(stats, c.name, "ed25519", () => {
      const seed = unhex(c.seed_hex);
      const pk = unhex(c.public_key_hex);
      const msg = unhex(c.signing_input_hex);
      const sig = unhex(c.signature_hex);
      expectEq(hex(publicKeyFromSeed(seed)), c.public_key_hex, "public key derived from seed");
      expect(ed25519Verify(pk, msg, sig), "signature_hex does not verify over signing_input_hex");
      expectEq(hex(ed25519Sign(seed, msg)), c.signature_hex, "deterministic signature from seed");
      // A one-bit change must not verify (sanity check of the verifier).
      const flipped = Buffer.from(msg);
      flipped[flipped.length - 1] ^= 1;
      expect(!ed25519Verify(pk, flipped, sig), "signature verifies over a modified message");
    });
  }
  if ("id_input_hex" in c && "id_hex" in c) {
    runCheck(stats, c.name, "id", () => {
      expectEq(hex(sha256(unhex(c.id_input_hex))), c.id_hex, "SHA-256(id_input)");
      if (domainPrefix && "signing_input_hex" in c) {
        expectEq(c.signing_input_hex, hex(domainPrefix) + c.id_hex, "signing input = prefix || id");
        expectEq(unhex(c.signing_input_hex).length, 56, "signing input length");
      }
    });
  }
}

function runEncoding(stats) {
  for (const c of loadVectors("encoding.json")) {
    genericChecks(stats, c, null);
    if (c.valid) {
      runCheck(stats, c.name, "decode", () => {
        const v = expectOk(() => mpDecode(unhex(c.canonical_hex)), "decode");
        expectEq(JSON.stringify(toTyped(v)), JSON.stringify(c.value), "decoded value");
      });
      runCheck(stats, c.name, "encode", () => {
        expectEq(hex(mpEncode(fromTyped(c.value))), c.canonical_hex, "encoding of value");
      });
    } else {
      runCheck(stats, c.name, "reject", () => {
        expectCode(c.error, () => mpDecode(unhex(c.wire_hex)));
      });
    }
  }
}

// §2.3: six groups of five digits; group i is bytes h[5i..5i+4] big-endian, mod 100000.
function fingerprint(nodeId) {
  const h = sha256(Buffer.concat([Buffer.from("TADAMUN-FINGERPRINT-V1\0", "ascii"), nodeId]));
  const groups = [];
  for (let i = 0; i < 6; i++) {
    let n = 0n;
    for (const byte of h.subarray(5 * i, 5 * i + 5)) n = (n << 8n) | BigInt(byte);
    groups.push((n % 100000n).toString().padStart(5, "0"));
  }
  return groups.join(" ");
}

function runKeylog(stats) {
  for (const c of loadVectors("keylog.json")) {
    genericChecks(stats, c, KEYEVENT_PREFIX);
    if (c.valid) {
      runCheck(stats, c.name, "log", () => {
        const events = c.log_hex.map((h) => expectOk(() => parseSignedEvent(unhex(h)), "signed event"));
        // Node id = digest of the first event (§2.2, §4.7); the prev chain.
        expectEq(hex(events[0].digest), c.node_id_hex, "node id (digest of the inception)");
        for (let i = 1; i < events.length; i++) {
          const e = events[i];
          expectEq(hex(e.node), c.node_id_hex, `event ${i} node`);
          expectEq(hex(e.prev), hex(events[e.pos - 1].digest), `event ${i} prev`);
        }
        const st = expectOk(() => verifyLog(c.log_hex), "verify log");
        expectEq(hex(st.nodeId), c.node_id_hex, "state node id");
        if (c.fingerprint !== undefined) {
          expectEq(fingerprint(st.nodeId), c.fingerprint, "fingerprint (§2.3)");
        }
        const head = headOf(st);
        expectEq(head.pos, c.state.position, "state position");
        expectEq(hex(head.op), c.state.op_hex, "state op");
        expectEq(st.threshold, c.state.threshold, "state threshold");
        expectEq(JSON.stringify(st.officers.map(hex)), JSON.stringify(c.state.officers_hex), "state officers");
        expectEq(JSON.stringify(st.next.map(hex)), JSON.stringify(c.state.next_hex), "state next");
        // The last signed event's own fields (§13.3).
        const last = events[events.length - 1];
        expectEq(c.canonical_hex, c.log_hex[c.log_hex.length - 1], "canonical_hex is the last signed event");
        expectEq(hex(last.eventBytes), c.id_input_hex, "id input = event map bytes");
        expectEq(hex(last.digest), c.id_hex, "event digest");
        const signers = last.type === "key.delegation" ? stateOfficersBefore(c.log_hex, last.pos) : last.officers;
        const idx = signers.findIndex((k) => hex(k) === c.public_key_hex);
        expect(idx >= 0, "public_key_hex is not in the signer list of the last event");
        const entry = last.sigs.find((s) => s.index === idx);
        expect(entry !== undefined && hex(entry.sig) === c.signature_hex, "signature_hex is not the signer's entry in sigs");
      });
    } else {
      runCheck(stats, c.name, "reject", () => {
        if (c.known_hex) {
          const st = expectOk(() => verifyLog(c.known_hex), "known log");
          expectCode(c.error, () => (c.complete ? presentWholeLog(st, c.log_hex) : verifyLog(c.log_hex, st)));
        } else {
          expectCode(c.error, () => verifyLog(c.log_hex));
        }
      });
    }
  }
}

/** Current officers at the time of the event at `pos` (the signer list of a delegation). */
function stateOfficersBefore(logHex, pos) {
  let st = null;
  for (const h of logHex) {
    const e = parseSignedEvent(unhex(h));
    if (e.pos >= pos) break;
    st = applyEvent(st, e);
  }
  return st.officers;
}

function runEnvelopes(stats) {
  for (const c of loadVectors("envelopes.json")) {
    genericChecks(stats, c, ENVELOPE_PREFIX);
    const st = (() => {
      try {
        return verifyLog(c.log_hex);
      } catch (e) {
        return e;
      }
    })();
    if (c.valid) {
      runCheck(stats, c.name, "envelope", () => {
        expect(!(st instanceof Error), `origin key log does not verify: ${st.message}`);
        const wire = unhex(c.canonical_hex);
        const d = expectOk(() => decodeEnvelope(wire), "decode");
        const keys = mapKeys(d.wire);
        expect(keys[0] === "env" && keys[keys.length - 1] === "sig" && keys.every((k) => ["env", "relay", "sig"].includes(k)), `outer keys ${keys}`);
        expectEq(hex(d.envBytes), c.id_input_hex, "re-encoded env bytes");
        expectEq(hex(sha256(d.envBytes)), c.id_hex, "id = H(env bytes)");
        // §5.1: the env bytes appear verbatim after the map header and the key "env".
        expectEq(hex(wire.subarray(5, 5 + d.envBytes.length)), c.id_input_hex, "env bytes verbatim in the wire bytes");
        expectEq(hex(d.sig), c.signature_hex, "sig");
        expectEq(d.f.type, c.type, "type");
        const id = expectOk(() => verifyEnvelope(d, st, c.now), "verify");
        expectEq(hex(id), c.id_hex, "verified id");
        expectEq(hex(st.events[d.f.kpos].op), c.public_key_hex, "operational key at kpos");
        expectOk(() => parseBody(d), "parse");
        expectOk(() => checkCoalition(d), "coalition");
      });
    } else {
      runCheck(stats, c.name, "reject", () => {
        expect(!(st instanceof Error), `origin key log does not verify: ${st.message}`);
        const wire = unhex(c.wire_hex);
        const stages = [
          ["decode", () => decodeEnvelope(wire)],
          ["verify", (d) => verifyEnvelope(d, st, c.now)],
          ["parse", (d) => parseBody(d)],
          ["coalition", (d) => checkCoalition(d)],
        ];
        let d;
        for (const [stage, fn] of stages) {
          if (stage === c.stage) {
            expectCode(c.error, () => fn(d), `stage ${stage}: `);
            return;
          }
          const r = expectOk(() => fn(d), `stage ${stage} (before ${c.stage})`);
          if (stage === "decode") d = r;
        }
        throw new CheckError(`unknown stage ${c.stage}`);
      });
    }
  }
}

const PROFILE_BASE_PREFIXES = ['"@method": ', '"@target-uri": ', '"content-digest": ', '"tadamun-destination": ', '"@signature-params": ('];

function runHttpsig(stats) {
  for (const c of loadVectors("http_signatures.json")) {
    genericChecks(stats, c, null);
    const pk = unhex(c.public_key_hex);
    const resolve = (keyid) => (keyid === c.keyid ? pk : undefined);
    runCheck(stats, c.name, c.valid ? "verify" : "reject", () => {
      if (c.kind === "rfc9421") {
        expect(c.valid, "only valid rfc9421 cases are handled");
        const r = expectOk(() => verifyGenericRequest(c.request, c.label, resolve), "RFC 9421 verification");
        expectEq(hex(r.base), c.signing_input_hex, "signature base");
        return;
      }
      expectEq(c.kind, "tadamun-profile", "kind");
      if (!c.valid) {
        expectCode(c.error, () => verifyProfileRequest(c.request, c.now, c.own_node_id, resolve));
        return;
      }
      const text = unhex(c.signing_input_hex).toString("latin1");
      expect(/^[\x20-\x7e\n]*$/.test(text), "signing input is not printable ASCII");
      const lines = text.split("\n");
      expectEq(lines.length, 5, "signature base line count");
      lines.forEach((l, i) => expect(l.startsWith(PROFILE_BASE_PREFIXES[i]), `line ${i + 1} of the base: ${l.slice(0, 40)}`));
      expect(!text.endsWith("\n"), "base ends with LF");
      const r = expectOk(() => verifyProfileRequest(c.request, c.now, c.own_node_id, resolve), "profile verification");
      expectEq(hex(r.base), c.signing_input_hex, "signature base");
      expectEq(r.keyid, c.keyid, "keyid returned");
      if (c.sign) {
        const h = signRequest(c.request.method, c.request.url, unhex(c.request.body_hex), unhex(c.seed_hex), c.sign);
        for (const [name, value] of Object.entries(h)) {
          expectEq(oneHeader(c.request.headers, name, "httpsig_malformed"), value, `signed header ${name}`);
        }
      }
    });
  }
}

// Self-checks of the spec's worked examples (§10.1, §10.2).
const specNotes = [];
function runSpecExamples(stats) {
  runCheck(stats, "§10.2 empty-body digest", "digest", () => {
    expectEq(`sha-256=:${sha256(Buffer.alloc(0)).toString("base64")}:`, "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", "digest");
  });
  runCheck(stats, "§10.1 example body digest", "digest", () => {
    const body = Buffer.from("82a26964cd0539a474797065a470696e67", "hex");
    expectEq(body.length, 17, "body length");
    expectEq(sha256(body).toString("base64"), "jpnS3sXAAiAOIQh1wv0B4E7Rg5M4pyoxCASpO4O4TOM=", "digest");
    // Not counted: §14 says bodies are canonical msgpack, but this example body is not.
    try {
      mpDecode(body);
    } catch (e) {
      if (!(e instanceof ProtoError)) throw e;
      specNotes.push(`§10.1 example body is not canonical msgpack (${e.message}); §14 says bodies are canonical`);
    }
  });
  runCheck(stats, "§2.1 prefixes", "prefix", () => {
    expectEq(KEYEVENT_PREFIX.length, 24, "key event prefix length");
    expectEq(ENVELOPE_PREFIX.length, 24, "envelope prefix length");
  });
}

// ---------------------------------------------------------------------------
// Self-tests: SPEC.md rules that no vector exercises. These check this
// implementation against its own reading of the SPEC (they are not known
// answers), building new inputs with the seeds published in the vectors.
// ---------------------------------------------------------------------------

/** Plain JS -> value: null, boolean, number/bigint, string, Buffer, array, object (map). */
function V(x) {
  if (x === null) return { t: "nil" };
  if (typeof x === "boolean") return { t: "bool", v: x };
  if (typeof x === "number" || typeof x === "bigint") return mkInt(x);
  if (typeof x === "string") return mkStr(x);
  if (Buffer.isBuffer(x)) return mkBin(x);
  if (Array.isArray(x)) return { t: "array", v: x.map(V) };
  if (typeof x.t === "string") return x;
  return { t: "map", v: Object.keys(x).map((k) => ({ k, kb: Buffer.from(k, "utf8"), v: V(x[k]) })) };
}
const seedOf = (label) => sha256(Buffer.from(`tadamun-interop-selftest:${label}`));

function runSelfTests(stats) {
  const T1 = (name, fn) => runCheck(stats, name, "self", fn);
  const rejects = (name, code, fn) => T1(name, () => expectCode(code, fn));
  const accepts = (name, fn) => T1(name, () => expectOk(fn, name));

  // --- §3 encoding ---------------------------------------------------------
  const dec = (h) => () => mpDecode(Buffer.from(h.replace(/ /g, ""), "hex"));
  rejects("§3.3 overlong UTF-8 (c0 80)", "invalid_utf8", dec("a2 c080"));
  rejects("§3.3 code point above U+10FFFF", "invalid_utf8", dec("a4 f4908080"));
  rejects("§3.3 truncated UTF-8 sequence", "invalid_utf8", dec("a2 e282"));
  T1("§3.3 leading U+FEFF is kept (no BOM stripping)", () => {
    const v = mpDecode(Buffer.from("a3efbbbf", "hex"));
    expectEq(v.v, "\ufeff", "decoded string");
  });
  rejects("§3.3 str32 for 3 bytes", "noncanonical", dec("db 00000003 616263"));
  rejects("§3.3 bin16 for 1 byte", "noncanonical", dec("c5 0001 00"));
  rejects("§3.3 map32 for 1 entry", "noncanonical", dec("df 00000001 a161 01"));
  rejects("§3.2 uint32 for 65535", "noncanonical", dec("ce 0000ffff"));
  rejects("§3.2 int32 for -128", "noncanonical", dec("d2 ffffff80"));
  rejects("§3.2 int64 for -2^31", "noncanonical", dec("d3 ffffffff80000000"));
  rejects("§3.1 ext8", "ext_not_allowed", dec("c7 01 05 00"));
  rejects("§3.1 fixext16", "ext_not_allowed", dec("d8 05" + "00".repeat(16)));
  rejects("§3.5 17 nested maps", "too_deep", dec("81a161".repeat(16) + "80"));
  accepts("§3.5 16 nested maps", dec("81a161".repeat(15) + "80"));
  rejects("§3.5 truncated uint16", "truncated", dec("cd 01"));
  rejects("§3.5 bytes after a container", "trailing_bytes", dec("91 01 02"));
  rejects("§3.4 prefix key after the longer key", "unsorted_keys", dec("82 a26161 01 a161 02"));
  rejects("§3.5 str16 header over the limit, no content", "too_long", dec("da 8001"));
  rejects("§3.5 too_large wins over other errors", "too_large", () => mpDecode(Buffer.alloc(65537, 0xc1)));

  // --- §4 key logs -----------------------------------------------------------
  // Officer A is the 1-of-1 officer of keylog.json; op0 is the operational key of envelopes.json.
  const seedA = unhex("c2ca18d400adc354228f66f1d7b424f26370bbd0cd48b8f17b0a235101da64bd");
  const seedOp0 = unhex("f97c0cba0551e8a8a5276877096b29998dfd970399ef477de8f8cf086213fef9");
  const [seedB, seedOp1] = [seedOf("officer-B"), seedOf("op-1")];
  const [pubA, pubB, op0, op1] = [seedA, seedB, seedOp0, seedOp1].map(publicKeyFromSeed);
  const signEvent = (ev, signers) => {
    const digest = sha256(mpEncode(V(ev)));
    const msg = Buffer.concat([KEYEVENT_PREFIX, digest]);
    const sigs = signers.map(([i, seed]) => [i, Buffer.isBuffer(seed) ? ed25519Sign(seed, msg) : seed(msg)]);
    return { hex: hex(mpEncode(V({ event: ev, sigs }))), digest };
  };
  const incEv = { type: "key.inception", v: 1, pos: 0, created: 0, op: op0, officers: [pubA], threshold: 1, next: [sha256(pubB)] };
  const inc = signEvent(incEv, [[0, seedA]]);
  const nodeId = inc.digest;
  const delEv = (pos, prev, seal, op, extra = {}) => ({ type: "key.delegation", v: 1, pos, created: 0, node: nodeId, prev, seal, op, ...extra });
  const del1 = signEvent(delEv(1, nodeId, 3, op1), [[0, seedA]]);
  accepts("§4.5 inception + delegation (seal 3)", () => verifyLog([inc.hex, del1.hex]));
  rejects("§4.6 delegation naming another node", "keylog_wrong_node", () =>
    verifyLog([inc.hex, signEvent({ ...delEv(1, nodeId, 3, op1), node: Buffer.alloc(32, 9) }, [[0, seedA]]).hex]));
  rejects("§4.5 seal lower than the previous event's", "keylog_bad_event", () =>
    verifyLog([inc.hex, del1.hex, signEvent(delEv(2, del1.digest, 2, op0), [[0, seedA]]).hex]));
  rejects("§4.2 extra field in an event", "keylog_bad_event", () => verifyLog([signEvent({ ...incEv, extra: 1 }, [[0, seedA]]).hex]));
  rejects("§4.2 v = 2", "keylog_bad_event", () => verifyLog([signEvent({ ...incEv, v: 2 }, [[0, seedA]]).hex]));
  rejects("§4.2 op equal to an officer key", "keylog_bad_event", () => verifyLog([signEvent({ ...incEv, op: pubA }, [[0, seedA]]).hex]));
  rejects("§4.2 inception at pos 1", "keylog_bad_position", () => verifyLog([signEvent({ ...incEv, pos: 1 }, [[0, seedA]]).hex]));
  rejects("§4.2 next shorter than threshold", "keylog_bad_threshold", () =>
    verifyLog([signEvent({ ...incEv, officers: [pubA, pubB], threshold: 2 }, [[0, seedA], [1, seedB]]).hex]));
  rejects("§4.2 a commitment listed twice", "keylog_duplicate_key", () =>
    verifyLog([signEvent({ ...incEv, next: [sha256(pubB), sha256(pubB)] }, [[0, seedA]]).hex]));
  rejects("§4.4 signature index outside the signer list", "keylog_bad_signature", () => verifyLog([signEvent(incEv, [[1, seedA]]).hex]));
  rejects("§4.4 signature of 63 bytes", "keylog_bad_event", () =>
    verifyLog([signEvent(incEv, [[0, (m) => ed25519Sign(seedA, m).subarray(0, 63)]]).hex]));
  rejects("§4.4 indices in descending order", "keylog_bad_event", () =>
    verifyLog([signEvent({ ...incEv, officers: [pubA, pubB], next: [sha256(pubB), sha256(pubA)] }, [[1, seedB], [0, seedA]]).hex]));
  const rotEv = { type: "key.rotation", v: 1, pos: 2, created: 0, node: nodeId, prev: del1.digest, seal: 3, op: op1, officers: [pubB], threshold: 1, next: [sha256(op0)] };
  const rot = signEvent(rotEv, [[0, seedB]]);
  T1("§4.3 rotation to the committed key", () => {
    const st = expectOk(() => verifyLog([inc.hex, del1.hex, rot.hex]), "rotation");
    expectEq(hex(st.officers[0]), hex(pubB), "new officer");
  });
  rejects("§4.3 rotation back to a key that is not committed", "keylog_commitment_mismatch", () =>
    verifyLog([inc.hex, del1.hex, rot.hex, signEvent({ ...rotEv, pos: 3, prev: rot.digest, officers: [pubA], next: [sha256(pubB)] }, [[0, seedA]]).hex]));
  rejects("§4.4 a delegation after a rotation signed by the old officer", "keylog_bad_signature", () =>
    verifyLog([inc.hex, del1.hex, rot.hex, signEvent(delEv(3, rot.digest, 3, op0), [[0, seedA]]).hex]));
  accepts("§4.6 extending a known log with new events", () => verifyLog([rot.hex], verifyLog([inc.hex, del1.hex])));
  rejects("§4.6 a gap when extending a known log", "keylog_bad_position", () =>
    verifyLog([signEvent({ ...rotEv, pos: 3 }, [[0, seedB]]).hex], verifyLog([inc.hex])));

  // --- §5, §6 envelopes ------------------------------------------------------
  const st = verifyLog([inc.hex, del1.hex]); // op0 up to seq 3, then op1
  const now = 2000;
  const baseEnv = { v: 1, type: "call.update", origin: nodeId, kpos: 0, seq: 1, created: 1000, aud: "public", body: { call: Buffer.alloc(32, 7), text: { en: "x" } } };
  const prevId = Buffer.alloc(32, 1);
  const env = (over) => {
    const e = { ...baseEnv, ...over };
    for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
    if (e.seq > 1 && !("prev" in over)) e.prev = prevId;
    return e;
  };
  const wireOf = (e, seed = seedOp0, outer = {}) => {
    const ev = V(e);
    const sig = ed25519Sign(seed, Buffer.concat([ENVELOPE_PREFIX, sha256(mpEncode(ev))]));
    return mpEncode(V({ env: ev, sig, ...outer }));
  };
  const full = (wire) => () => {
    const d = decodeEnvelope(wire);
    verifyEnvelope(d, st, now);
    return parseBody(d);
  };
  accepts("§4.5 old position, seq within the seal", full(wireOf(env({ seq: 3 }))));
  rejects("§4.5 old position, seq beyond the seal", "key_revoked", full(wireOf(env({ seq: 4 }))));
  accepts("§6.3 envelope under the delegated key (kpos 1)", full(wireOf(env({ kpos: 1, seq: 4 }), seedOp1)));
  rejects("§6.3 kpos 1 signed with the old key", "bad_signature", full(wireOf(env({ kpos: 1, seq: 4 }))));
  rejects("§5.1 extra outer key", "malformed", full(wireOf(env({}), seedOp0, { zzz: 1 })));
  rejects("§5.1 outer value not a map", "malformed", () => decodeEnvelope(mpEncode(V([1]))));
  rejects("§5.2 prev present with seq 1", "invalid_field", full(wireOf(env({ prev: prevId }))));
  rejects("§5.2 expires equal to created", "invalid_field", full(wireOf(env({ expires: 1000 }))));
  rejects("§5.2 seq 0", "invalid_field", full(wireOf(env({ seq: 0 }))));
  rejects("§5.2 type over 128 bytes", "too_long", full(wireOf(env({ type: `org.example.${"a".repeat(120)}` }))));
  rejects("§5.2 aud over 80 bytes", "too_long", full(wireOf(env({ aud: `node:${"a".repeat(80)}` }))));
  rejects("§5.5 aud with upper-case hex", "invalid_field", full(wireOf(env({ aud: `node:${"A".repeat(64)}` }))));
  accepts("§5.5 coalition audience", full(wireOf(env({ aud: `coalition:${"ab".repeat(32)}` }))));
  rejects("§5.3 crit not sorted", "invalid_field", full(wireOf(env({ expires: 3000, crit: ["expires", "body.text"] }))));
  rejects("§5.3 crit with a body field of an unknown core type", "unknown_critical", () =>
    decodeEnvelope(wireOf(env({ type: "call.retract", crit: ["body.text"] }))));
  rejects("§5.4 relay path of 17 entries", "invalid_field", full(wireOf(env({}), seedOp0, { relay: { path: Array(17).fill(nodeId) } })));
  rejects("§5.4 relay with another key", "invalid_field", full(wireOf(env({}), seedOp0, { relay: { path: [nodeId], via: 1 } })));
  rejects("§5.2 body nil", "invalid_field", full(wireOf(env({ body: null }))));
  rejects("§5.2 aud missing", "missing_field", full(wireOf(env({ aud: undefined }))));
  rejects("§7.2 nil as an optional body field", "invalid_field", full(wireOf(env({ type: "call.cancel", body: { call: Buffer.alloc(32), reason: null } }))));
  rejects("§8.5 call.amend changing nothing", "invalid_field", full(wireOf(env({ type: "call.amend", body: { call: Buffer.alloc(32) } }))));
  rejects("§8.5 activation naming fewer tallies than orgs", "invalid_field", full(wireOf(env({
    type: "call.activate", body: { call: Buffer.alloc(32), tallies: [Buffer.alloc(32, 1)], pledges: 5, orgs: 2 } }))));

  // --- §10 transport signatures -------------------------------------------------
  const seedH = Buffer.from([...Array(32).keys()]);
  const pkH = publicKeyFromSeed(seedH);
  const keyid = "53689c87963a7585f82a6bd88ae99dbe42e5fece1fbe79217666e7d639a54266";
  const own = "9df2ceceab51de16702a71898473a06409634d8efa6b66ce5494735b6b4ed459";
  const resolve = (k) => (k === keyid ? pkH : undefined);
  const body = Buffer.from("82a26964cd0539a474797065a470696e67", "hex");
  const hnow = 1700000010;
  const defParams = [["created", 1700000000], ["expires", 1700000300], ["nonce", "selftest-nonce-0001"], ["keyid", keyid], ["alg", "ed25519"], ["tag", "tadamun-fed-v1"]];
  const mkReq = ({ params = defParams, digest, dest = own, siText, sigText, url = "https://node-b.example/federation/v1/inbox", extra = [] } = {}) => {
    const cd = digest ?? `sha-256=:${sha256(body).toString("base64")}:`;
    const headers = [["Content-Digest", cd], ["Tadamun-Destination", dest]];
    const base = signatureBase("POST", url, headers, PROFILE_COMPONENTS, params);
    const sig = ed25519Sign(seedH, base).toString("base64");
    headers.push(["Signature-Input", siText ?? `tadamun=${serialiseParams(PROFILE_COMPONENTS, params)}`]);
    headers.push(["Signature", sigText ? sigText(sig) : `tadamun=:${sig}:`]);
    return { method: "POST", url, headers: [...headers, ...extra], body_hex: hex(body) };
  };
  const hv = (req) => () => verifyProfileRequest(req, hnow, own, resolve);
  const comps = '("@method" "@target-uri" "content-digest" "tadamun-destination")';
  accepts("§10.6 baseline request", hv(mkReq()));
  const reordered = [defParams[2], defParams[3], defParams[0], defParams[1], defParams[5], defParams[4]];
  accepts("§10.6 parameters in another order (base uses the received order)", hv(mkReq({ params: reordered })));
  accepts("§10.3 other labels are parsed and ignored", hv(mkReq({
    siText: `other=("@method");created=1, tadamun=${serialiseParams(PROFILE_COMPONENTS, defParams)}`,
    sigText: (s) => `other=:AAAA:,tadamun=:${s}:` })));
  accepts("§10.3 integer with leading zeros", hv(mkReq({
    siText: `tadamun=${comps};created=0001700000000;expires=1700000300;nonce="selftest-nonce-0001";keyid="${keyid}";alg="ed25519";tag="tadamun-fed-v1"` })));
  accepts("§10.3 spaces inside the inner list", hv(mkReq({
    siText: `tadamun=( "@method"  "@target-uri" "content-digest" "tadamun-destination" );created=1700000000;expires=1700000300;nonce="selftest-nonce-0001";keyid="${keyid}";alg="ed25519";tag="tadamun-fed-v1"` })));
  accepts("§10.6 destination with surrounding spaces", hv(mkReq({ dest: ` ${own}\t` })));
  const d256 = sha256(body).toString("base64");
  const d512 = sha512(body).toString("base64");
  accepts("§10.2 sha-256 and sha-512 both matching", hv(mkReq({ digest: `sha-256=:${d256}:, sha-512=:${d512}:` })));
  rejects("§10.2 sha-512 not matching beside a good sha-256", "httpsig_bad_digest", hv(mkReq({ digest: `sha-256=:${d256}:, sha-512=:${sha512(Buffer.alloc(0)).toString("base64")}:` })));
  rejects("§10.2 upper-case algorithm key", "httpsig_bad_digest", hv(mkReq({ digest: `SHA-256=:${d256}:` })));
  rejects("§10.3 parameter on a Content-Digest member", "httpsig_bad_digest", hv(mkReq({ digest: `sha-256=:${d256}:;x=1` })));
  rejects("§10.3 base64 without padding", "httpsig_malformed", hv(mkReq({ sigText: (s) => `tadamun=:${s.replace(/=+$/, "")}:` })));
  rejects("§10.3 parameter twice", "httpsig_malformed", hv(mkReq({ params: [...defParams, ["nonce", "selftest-nonce-0002"]] })));
  rejects("§10.3 unknown parameter", "httpsig_malformed", hv(mkReq({ params: [...defParams, ["foo", 1]] })));
  rejects("§10.3 token as a parameter value", "httpsig_malformed", hv(mkReq({
    siText: `tadamun=${comps};created=1700000000;expires=1700000300;nonce="selftest-nonce-0001";keyid="${keyid}";alg=ed25519;tag="tadamun-fed-v1"` })));
  rejects("§10.3 dictionary key twice", "httpsig_malformed", hv(mkReq({ sigText: (s) => `tadamun=:${s}:, tadamun=:${s}:` })));
  rejects("§10.3 Signature-Input given twice", "httpsig_malformed", hv(mkReq({ extra: [["signature-input", "x=()"]] })));
  rejects("§10.3 negative created", "httpsig_malformed", hv(mkReq({ params: [["created", -1], ...defParams.slice(1)] })));
  accepts("§10.6 expires exactly max_skew ago", () =>
    verifyProfileRequest(mkReq({ params: [["created", 1699999650], ["expires", 1699999950], ...defParams.slice(2)] }), hnow, own, resolve));
  rejects("§10.6 signature of 63 bytes", "httpsig_bad_signature", hv(mkReq({ sigText: () => `tadamun=:${Buffer.alloc(63).toString("base64")}:` })));
  rejects("§10.4 target URI with a fragment", "httpsig_malformed", () => {
    const req = mkReq();
    return verifyProfileRequest({ ...req, url: `${req.url}#frag` }, hnow, own, resolve);
  });
  rejects("§10.4 target URI with userinfo", "httpsig_malformed", () => {
    const req = mkReq();
    return verifyProfileRequest({ ...req, url: "https://u@node-b.example/federation/v1/inbox" }, hnow, own, resolve);
  });
}

// ---------------------------------------------------------------------------
// Coalition membership (§15.3)
// ---------------------------------------------------------------------------

/** One node's own events in seq order, given the invites that count (§15.3 rules 1-4). */
function walkNode(node, log, seed, counted) {
  const since = seed.members.get(node);
  const w = { member: since !== undefined, made: new Map(), leave: null };
  const firstJoin = new Map();
  let firstFound;
  for (const e of log) {
    if (e.kind === "join" && e.subject !== undefined && !firstJoin.has(e.subject)) firstJoin.set(e.subject, e.seq);
    if (e.kind === "found" && firstFound === undefined) firstFound = e.seq;
  }
  const leaves = log.filter((e) => e.kind === "leave");
  for (const e of log) {
    if (since !== undefined && e.seq <= since) continue;
    if (e.kind === "found") {
      if (e.seq === firstFound) w.member = true;
    } else if (e.kind === "invite") {
      if (w.member) w.made.set(e.id, [e.subject, e.created]);
    } else if (e.kind === "join") {
      const invite = counted.get(e.subject);
      const admitted =
        !w.member &&
        firstJoin.get(e.subject) === e.seq &&
        invite !== undefined &&
        invite[0] === node &&
        !leaves.some((l) => l.seq < e.seq && l.created >= invite[1]);
      if (admitted) w.member = true;
    } else if (e.kind === "leave") {
      w.member = false;
      w.leave = e.id;
    }
  }
  return w;
}

function membershipOf(seed, events) {
  const held = new Map(events.map((e) => [e.id, e]));
  const logs = new Map([...seed.members.keys()].map((n) => [n, []]));
  for (const e of [...held.values()].sort((x, y) => x.seq - y.seq || (x.id < y.id ? -1 : 1))) {
    if (!logs.has(e.origin)) logs.set(e.origin, []);
    logs.get(e.origin).push(e);
  }
  let counted = new Map(seed.invites);
  let walks = new Map();
  const rounds = [...held.values()].filter((e) => e.kind === "invite").length + 2;
  for (let round = 0; round < rounds; round++) {
    walks = new Map([...logs].map(([n, log]) => [n, walkNode(n, log, seed, counted)]));
    const grown = new Map(seed.invites);
    for (const w of walks.values()) for (const [id, v] of w.made) grown.set(id, v);
    const same = grown.size === counted.size && [...grown.keys()].every((k) => counted.has(k));
    counted = grown;
    if (same) break;
  }
  const used = new Set();
  for (const log of logs.values()) {
    for (const e of log) if (e.kind === "join" && counted.get(e.subject)?.[0] === e.origin) used.add(e.subject);
  }
  const invited = new Set();
  for (const [id, [invitee, created]] of counted) {
    const declined = (logs.get(invitee) ?? []).some((e) => e.kind === "leave" && e.created >= created);
    if (!used.has(id) && !declined) invited.add(invitee);
  }
  const out = {};
  for (const node of new Set([...walks.keys(), ...invited])) {
    const w = walks.get(node);
    if (w?.member) out[node] = "member";
    else if (invited.has(node)) out[node] = "invited";
    else if (w?.leave) out[node] = "left";
  }
  return out;
}

function runMembership(stats) {
  for (const c of loadVectors("membership.json")) {
    runCheck(stats, c.name, "membership", () => {
      const seed = {
        members: new Map(c.seed.members.map(([n, since]) => [n, since])),
        invites: new Map(c.seed.invites.map(([id, who, at]) => [id, [who, at]])),
      };
      const sorted = (o) => JSON.stringify(Object.entries(o).sort());
      expectEq(sorted(membershipOf(seed, c.events)), sorted(c.standings), "standings");
      expectEq(sorted(membershipOf(seed, [...c.events].reverse())), sorted(c.standings), "standings, events reversed");
    });
  }
}

const FILES = [
  ["encoding.json", runEncoding],
  ["keylog.json", runKeylog],
  ["envelopes.json", runEnvelopes],
  ["membership.json", runMembership],
  ["http_signatures.json", runHttpsig],
  ["SPEC.md examples", runSpecExamples],
  ["self-tests (SPEC rules without vectors)", runSelfTests],
];

for (const [file, fn] of FILES) {
  const stats = { file, passed: 0, failed: 0 };
  try {
    fn(stats);
  } catch (e) {
    stats.failed++;
    totalFailed++;
    failures.push(`${file}: ${e.stack}`);
    console.log(`  FAIL ${file}: ${e.stack}`);
  }
  console.log(`${file}: ${stats.passed} checks passed, ${stats.failed} failed`);
}
for (const n of specNotes) console.log(`SPEC NOTE: ${n}`);
if (failures.length > 0) {
  console.log("failures:");
  for (const f of failures) console.log(`  ${f}`);
}
console.log(`${totalPassed} passed, ${totalFailed} failed`);
process.exitCode = totalFailed === 0 ? 0 : 1;
