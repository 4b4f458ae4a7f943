// kubo-rpc-client (the JavaScript client of Kubo's RPC API) driving a greenbench server, for
// tests/test_interop.py:  node kubo.mjs URL CAR  -> JSON of what each call answered.
import fs from 'node:fs'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import * as dagPB from '@ipld/dag-pb'

const [url, carPath] = process.argv.slice(2)
const ipfs = create({ url: `${url}/api/v0` })
const out = {}

const version = await ipfs.version()
out.version = version.version
const id = await ipfs.id()
out.id = id.id.toString()

const raw = await ipfs.block.put(new TextEncoder().encode('block from kubo-rpc-client'))
out.block_put_raw = raw.toString()
out.block_get = new TextDecoder().decode(await ipfs.block.get(raw))
out.block_stat = (await ipfs.block.stat(raw)).size

const node = dagPB.encode(dagPB.prepare({ Data: new Uint8Array([8, 1]), Links: [{ Hash: raw, Name: 'a', Tsize: 26 }] }))
out.block_put_dag_pb = (await ipfs.block.put(node, { format: 'dag-pb' })).toString()
try {
  await ipfs.block.put(new TextEncoder().encode('hello'), { format: 'dag-pb' })
  out.bad_dag_pb = 'accepted'
} catch (err) {
  out.bad_dag_pb = err.message
}

out.dag_import = []
for await (const { root } of ipfs.dag.import([fs.readFileSync(carPath)])) out.dag_import.push(root.cid.toString())

out.pin_add = (await ipfs.pin.add(CID.parse(out.block_put_dag_pb))).toString()
out.pin_ls = []
for await (const pin of ipfs.pin.ls()) out.pin_ls.push([pin.cid.toString(), pin.type])
out.pin_rm = (await ipfs.pin.rm(CID.parse(out.block_put_dag_pb))).toString()

let size = 0
for await (const chunk of ipfs.dag.export(CID.parse(out.dag_import[0]))) size += chunk.length
out.dag_export_bytes = size

try {
  await ipfs.block.get(CID.parse('bafkreihwfn6ef2acwaz3wvtj5yi7xw3ki6xmdsc4vhhz45f3brtthr5ceu'))
  out.missing = 'found?'
} catch (err) {
  out.missing = err.message
}
process.stdout.write(JSON.stringify(out))
