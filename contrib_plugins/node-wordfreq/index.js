// A plugyard plugin written in Node.js: it counts the words of a text.
//
// It speaks plugyard's sandbox protocol (docs/protocol.md): msgpack-RPC
// read from fd 3 and written to fd 4, "$/hello" first with the token from
// PLUGYARD_TOKEN. Nothing here is plugyard-specific beyond that: any
// msgpack library would do; this one uses @msgpack/msgpack.
"use strict";

const fs = require("fs");
const net = require("net");
const { encode, decodeMultiStream } = require("@msgpack/msgpack");

const REQUEST = 0;
const RESPONSE = 1;
const NOTIFICATION = 2;
const PLUGIN_ERROR = -32000;
const METHOD_NOT_FOUND = -32601;

function send(message) {
  const data = encode(message);
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += fs.writeSync(4, data, offset, data.length - offset);
    } catch (error) {
      if (error.code !== "EAGAIN") throw error;
    }
  }
}

function log(level, text) {
  send([NOTIFICATION, "$/log", [level, text]]);
}

// The plugin itself.
const plugin = {
  top: 10,

  setup(ctx) {
    this.configure((ctx && ctx.config) || {});
    log("info", `wordfreq set up, top ${this.top}`);
    return null;
  },

  configure(config) {
    if (config.top !== undefined) {
      if (!Number.isInteger(config.top) || config.top < 1) {
        throw new TypeError(`top must be a positive integer, not ${JSON.stringify(config.top)}`);
      }
      this.top = config.top;
    }
    return null;
  },

  execute(text) {
    if (typeof text !== "string") {
      throw new TypeError(`wordfreq counts the words of a string, not ${typeof text}`);
    }
    const counts = new Map();
    for (const word of text.toLowerCase().match(/[\p{L}\p{N}']+/gu) || []) {
      counts.set(word, (counts.get(word) || 0) + 1);
    }
    const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return Object.fromEntries(ranked.slice(0, this.top));
  },

  teardown() {
    return null;
  },
};

const METHODS = ["setup", "configure", "execute", "teardown"];

function answer(msgid, method, params) {
  if (method === "$/ping") return send([RESPONSE, msgid, null, "pong"]);
  if (!METHODS.includes(method)) {
    return send([RESPONSE, msgid, [METHOD_NOT_FOUND, `no method ${method}`, null], null]);
  }
  try {
    send([RESPONSE, msgid, null, plugin[method](...params)]);
  } catch (error) {
    const data = { type: error.name, traceback: String(error.stack) };
    send([RESPONSE, msgid, [PLUGIN_ERROR, error.message, data], null]);
  }
}

async function main() {
  const token = process.env.PLUGYARD_TOKEN || "";
  delete process.env.PLUGYARD_TOKEN;
  send([
    REQUEST,
    0,
    "$/hello",
    [
      {
        token,
        protocol: [1],
        name: process.argv[2] || "wordfreq",
        version: require("./package.json").version,
        methods: METHODS,
        depends_on: [],
      },
    ],
  ]);
  let welcomed = false;
  // A pipe read as a socket: libuv polls it, instead of a blocking read in
  // its thread pool that would keep process.exit() waiting.
  const incoming = new net.Socket({ fd: 3, readable: true, writable: false });
  for await (const message of decodeMultiStream(incoming)) {
    const [kind] = message;
    if (!welcomed) {
      if (kind !== RESPONSE || message[1] !== 0 || message[2] !== null) {
        process.stderr.write(`wordfreq: the host refused: ${JSON.stringify(message[2])}\n`);
        process.exit(2);
      }
      welcomed = true;
    } else if (kind === REQUEST) {
      const [, msgid, method, params] = message;
      if (method === "$/shutdown") {
        send([RESPONSE, msgid, null, null]);
        process.exit(0);
      }
      answer(msgid, method, params);
    }
    // Notifications: "$/cancel" has nothing to cancel, calls finish at once.
  }
  process.exit(0); // EOF on fd 3: the host is gone
}

main().catch((error) => {
  process.stderr.write(`wordfreq: ${error.stack}\n`);
  process.exit(1);
});
