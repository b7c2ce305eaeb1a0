// The comparison reflector for `deno task bench`: a plain Node.js `node:dgram` echo server.
// Prints its port, then echoes every datagram to its sender until killed.
import dgram from "node:dgram";

const socket = dgram.createSocket("udp4");
socket.on("message", (message, peer) => socket.send(message, peer.port, peer.address));
socket.bind(0, "127.0.0.1", () => console.log(socket.address().port));
