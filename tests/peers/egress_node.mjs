// Drives an Egress Twirp server through LiveKit's own Node server SDK (livekit-server-sdk,
// installed pinned under target/peers-node by scripts/test-peers.sh), one call per run.
//
//   node tests/peers/egress_node.mjs <method> '<json args>'
//   env: LIVEKIT_URL (http://host:port), LIVEKIT_API_KEY, LIVEKIT_API_SECRET,
//        LIVEKIT_REQUEST_TIMEOUT (seconds, optional)
//
// Prints one JSON line on stdout and exits 0:
//   {"ok": <EgressInfo as info.toJson()>}          (listEgress: {"ok": [<EgressInfo>...]})
//   {"error": {"code": ..., "message": ..., "status": ...}}   for a TwirpError
// Exits 3 after printing {"transportError": "..."} when the server cannot be reached,
// 2 on bad usage, 1 on anything else (a bug here).
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const USAGE = `usage: node tests/peers/egress_node.mjs <method> '<json args>'
env: LIVEKIT_URL (http://host:port), LIVEKIT_API_KEY, LIVEKIT_API_SECRET
methods and their args (a JSON object):
  startRoomComposite  {roomName, file?: {filepath, fileType?}, outputs?: {file?, stream?, segments?, images?},
                       layout?, preset?: "H264_720P_30"|..., advanced?: {EncodingOptions}, audioOnly?, videoOnly?, customBaseUrl?,
                       audioMixing?: "DUAL_CHANNEL_AGENT"|"DUAL_CHANNEL_ALTERNATE"}
  startWeb            {url, file? | outputs?, preset?, advanced?, audioOnly?, videoOnly?, awaitStartSignal?}
  startParticipant    {roomName, identity, file? | outputs?, preset?, advanced?, screenShare?}
  startTrackComposite {roomName, audioTrackId?, videoTrackId?, file? | outputs?, preset?, advanced?}
  startTrack          {roomName, trackId, filepath | websocketUrl}
  startEgress         {request: <StartEgressRequest as protobuf JSON>} (v2: template, web or media source)
  updateLayout        {egressId, layout}
  updateStream        {egressId, add?: [url], remove?: [url]}
  listEgress          {roomName?, egressId?, active?}
  stopEgress          {egressId}
A bare "file" is passed as an EncodedFileOutput (the SDK then sends both the legacy
"file" and "fileOutputs"); "outputs" is passed as EncodedOutputs. Output and option
objects are protobuf JSON (camelCase or proto names, enums by name).`;

function usage(msg) {
  if (msg) process.stderr.write(`egress_node: ${msg}\n`);
  process.stderr.write(USAGE + "\n");
  process.exit(2);
}

const argv = process.argv.slice(2);
if (argv.includes("-h") || argv.includes("--help")) {
  process.stdout.write(USAGE + "\n");
  process.exit(0);
}
if (argv.length < 1 || argv.length > 2) usage("expected <method> and one JSON argument");
const [method, rawArgs = "{}"] = argv;
let args;
try {
  args = JSON.parse(rawArgs);
} catch (e) {
  usage(`args are not JSON: ${e.message}`);
}
if (args === null || typeof args !== "object" || Array.isArray(args)) usage("args must be a JSON object");
const { LIVEKIT_URL: url, LIVEKIT_API_KEY: key, LIVEKIT_API_SECRET: secret } = process.env;
if (!url || !key || !secret) usage("LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set");

// Resolve the SDK from the pinned install, whatever NODE_PATH or the working directory is.
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const nodeDir = join(root, "target", "peers-node");
let sdk;
try {
  sdk = createRequire(join(nodeDir, "package.json"))("livekit-server-sdk");
} catch (e) {
  process.stderr.write(`egress_node: cannot load livekit-server-sdk from ${nodeDir} (run scripts/test-peers.sh): ${e.message}\n`);
  process.exit(1);
}
const {
  EgressClient, TwirpError, EncodedFileOutput, StreamOutput, SegmentedFileOutput, ImageOutput,
  DirectFileOutput, EncodingOptions, EncodingOptionsPreset, StartEgressRequest,
} = sdk;
// The SDK takes the mixing as the protocol's enum (its own dependency, @livekit/protocol).
const { AudioMixing } = createRequire(join(nodeDir, "package.json"))("@livekit/protocol");

function need(name) {
  if (args[name] === undefined) usage(`${method} needs "${name}"`);
  return args[name];
}

// EncodedOutputs (args.outputs) or a bare output (args.file / args.stream / args.segments).
function output() {
  if (args.outputs !== undefined) {
    const o = args.outputs, out = {};
    if (o.file !== undefined) out.file = EncodedFileOutput.fromJson(o.file);
    if (o.stream !== undefined) out.stream = StreamOutput.fromJson(o.stream);
    if (o.segments !== undefined) out.segments = SegmentedFileOutput.fromJson(o.segments);
    if (o.images !== undefined) out.images = ImageOutput.fromJson(o.images);
    return out;
  }
  if (args.file !== undefined) return EncodedFileOutput.fromJson(args.file);
  if (args.stream !== undefined) return StreamOutput.fromJson(args.stream);
  if (args.segments !== undefined) return SegmentedFileOutput.fromJson(args.segments);
  usage(`${method} needs "file" or "outputs"`);
}

// The SDK takes a preset as its enum number, advanced options as an EncodingOptions.
// (Note: the SDK drops preset H264_720P_30, whose number is 0, as "no options".)
function encodingOptions() {
  if (args.preset !== undefined) {
    const n = typeof args.preset === "number" ? args.preset : EncodingOptionsPreset[args.preset];
    if (typeof n !== "number") usage(`unknown preset ${JSON.stringify(args.preset)}`);
    return n;
  }
  if (args.advanced !== undefined) return EncodingOptions.fromJson(args.advanced);
  return undefined;
}

async function call(client) {
  switch (method) {
    case "startRoomComposite":
      return client.startRoomCompositeEgress(need("roomName"), output(), {
        layout: args.layout,
        encodingOptions: encodingOptions(),
        audioOnly: args.audioOnly,
        videoOnly: args.videoOnly,
        customBaseUrl: args.customBaseUrl,
        audioMixing: args.audioMixing === undefined ? undefined : AudioMixing[args.audioMixing],
      });
    case "startWeb":
      return client.startWebEgress(need("url"), output(), {
        encodingOptions: encodingOptions(),
        audioOnly: args.audioOnly,
        videoOnly: args.videoOnly,
        awaitStartSignal: args.awaitStartSignal,
      });
    case "startParticipant":
      return client.startParticipantEgress(need("roomName"), need("identity"), output(), {
        encodingOptions: encodingOptions(),
        screenShare: args.screenShare,
      });
    case "startTrackComposite":
      return client.startTrackCompositeEgress(need("roomName"), output(), {
        audioTrackId: args.audioTrackId,
        videoTrackId: args.videoTrackId,
        encodingOptions: encodingOptions(),
      });
    case "startTrack": {
      let out;
      if (args.websocketUrl !== undefined) out = args.websocketUrl;
      else out = DirectFileOutput.fromJson({ filepath: need("filepath") });
      return client.startTrackEgress(need("roomName"), out, need("trackId"));
    }
    case "startEgress":
      // The unified v2 request, given whole as protobuf JSON.
      return client.startEgress(StartEgressRequest.fromJson(need("request")));
    case "updateLayout":
      return client.updateLayout(need("egressId"), need("layout"));
    case "updateStream":
      return client.updateStream(need("egressId"), args.add ?? [], args.remove ?? []);
    case "listEgress": {
      const opts = {};
      for (const k of ["roomName", "egressId", "active"]) if (args[k] !== undefined) opts[k] = args[k];
      return client.listEgress(opts);
    }
    case "stopEgress":
      return client.stopEgress(need("egressId"));
    default:
      usage(`unknown method ${JSON.stringify(method)}`);
  }
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// LIVEKIT_REQUEST_TIMEOUT (seconds) overrides the SDK's 10 s: livekit-server takes 20 to 30 s
// to answer that no egress node can take a job.
const requestTimeout = Number(process.env.LIVEKIT_REQUEST_TIMEOUT) || undefined;
const client = new EgressClient(url, key, secret, requestTimeout ? { requestTimeout } : undefined);
try {
  const result = await call(client);
  emit({ ok: Array.isArray(result) ? result.map((i) => i.toJson()) : result.toJson() });
} catch (e) {
  if (e instanceof TwirpError) {
    emit({ error: { code: e.code ?? null, message: e.message, status: e.status } });
  } else if (e instanceof TypeError && e.message === "fetch failed" || e?.name === "TimeoutError" || e?.name === "AbortError") {
    const cause = e.cause ? `: ${e.cause.code ?? ""} ${e.cause.message ?? e.cause}`.trimEnd() : "";
    emit({ transportError: `${e.name}: ${e.message}${cause}` });
    process.exitCode = 3;
  } else {
    throw e;
  }
}
