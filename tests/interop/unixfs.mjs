// What real IPFS JavaScript libraries say about files, for tests/test_interop.py.
//
//   node unixfs.mjs cids FILE...   -> JSON {FILE: {importer, helia, helia_default, ipld_unixfs}}: each file's
//                                    root CID as computed by ipfs-unixfs-importer configured like Kubo's
//                                    `ipfs add --cid-version=1` (256 KiB fixed chunks, raw leaves, balanced
//                                    layout of at most 174 links), by @helia/unixfs configured the same way and
//                                    with its own defaults (since @helia/unixfs 8: 1 MiB chunks, 1024 links,
//                                    the IPIP-499 unixfs-v1-2025 profile), and by @ipld/unixfs (the library
//                                    behind ipfs-car) configured like Kubo.
//   node unixfs.mjs cat CAR        -> the file bytes of the CAR's first root, read with @ipld/car and
//                                    ipfs-unixfs-exporter (every block checked against its CID), on stdout.
import fs from 'node:fs'
import { once } from 'node:events'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { exporter } from 'ipfs-unixfs-exporter'
import { unixfs } from '@helia/unixfs'
import * as IpldUnixFS from '@ipld/unixfs'
import { withMaxChunkSize } from '@ipld/unixfs/file/chunker/fixed'
import { withWidth } from '@ipld/unixfs/file/layout/balanced'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { CID } from 'multiformats/cid'
import { CarReader } from '@ipld/car'

const KUBO = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 })
}

async function viaImporter (bytes) {
  let root
  for await (const entry of importer([{ content: bytes }], new MemoryBlockstore(), KUBO)) root = entry.cid
  return root.toString()
}

async function viaHelia (bytes, options) {
  const fs = unixfs({ blockstore: new MemoryBlockstore() })
  return (await fs.addBytes(bytes, options)).toString()
}

async function viaIpldUnixfs (bytes) {
  const settings = IpldUnixFS.configure({
    fileChunkEncoder: raw,
    smallFileEncoder: raw,
    chunker: withMaxChunkSize(262144),
    fileLayout: withWidth(174)
  })
  const { readable, writable } = new TransformStream({}, IpldUnixFS.withCapacity(1 << 30))
  const writer = IpldUnixFS.createWriter({ writable, settings })
  const drained = (async () => { for await (const _ of readable) { /* blocks are not needed */ } })()
  const file = IpldUnixFS.createFileWriter(writer)
  for (let i = 0; i < bytes.length; i += 1 << 20) await file.write(bytes.subarray(i, i + (1 << 20)))
  const link = await file.close()
  await writer.close()
  await drained
  return link.cid.toString()
}

async function cids (files) {
  const out = {}
  for (const path of files) {
    const bytes = new Uint8Array(fs.readFileSync(path))
    out[path] = {
      importer: await viaImporter(bytes),
      helia: await viaHelia(bytes, KUBO),
      helia_default: await viaHelia(bytes),
      ipld_unixfs: await viaIpldUnixfs(bytes)
    }
  }
  process.stdout.write(JSON.stringify(out))
}

async function cat (carPath) {
  const reader = await CarReader.fromBytes(new Uint8Array(fs.readFileSync(carPath)))
  const [root] = await reader.getRoots()
  const blockstore = {
    // interface-blockstore 7: a block comes back as an (async) iterable of byte chunks
    async * get (cid) {
      const block = await reader.get(CID.parse(cid.toString()))
      if (!block) throw new Error(`block ${cid} is not in the CAR`)
      const digest = await sha256.digest(block.bytes)
      if (!equal(digest.digest, block.cid.multihash.digest)) throw new Error(`block ${cid} does not match its CID`)
      yield block.bytes
    }
  }
  const entry = await exporter(root.toString(), blockstore)
  if (entry.type !== 'file' && entry.type !== 'raw') throw new Error(`${root} is a ${entry.type}, not a file`)
  for await (const chunk of entry.content()) {
    if (!process.stdout.write(chunk)) await once(process.stdout, 'drain')
  }
}

function equal (a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

const [cmd, ...args] = process.argv.slice(2)
if (cmd === 'cids') await cids(args)
else if (cmd === 'cat') await cat(args[0])
else {
  process.stderr.write('usage: node unixfs.mjs cids FILE... | cat CAR\n')
  process.exit(2)
}
