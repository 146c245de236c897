#!/usr/bin/env bash
# Checks this evidence bundle with standard tools only: bash, sha256sum, xxd, openssl (3.0 or newer, for Ed25519),
# grep, sed and cmp. It recomputes the SHA-256 of every entry from its exact bytes, follows the chain from the
# first entry to the checkpoint, checks every Ed25519 signature, every key hand-over and the checkpoint's signature.
# VERIFY.md explains each step; nothing here is Countersign code. Exit status 0: everything verified.
set -euo pipefail
cd "$(dirname "$0")"

for tool in sha256sum xxd openssl grep sed cmp; do
  command -v "$tool" >/dev/null || { echo "verify.sh needs $tool" >&2; exit 2; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# Each key file must hold the key its name says: the last 32 bytes of an Ed25519 public key's DER are the raw key.
for pem in keys/*.pem; do
  [ -e "$pem" ] || break
  name=$(basename "$pem" .pem)
  raw=$(openssl pkey -pubin -in "$pem" -outform DER | tail -c 32 | xxd -p -c 32)
  [ "$raw" = "$name" ] || fail "$pem holds key $raw, not $name"
done

first="" last="" prev="" entries=0 unsigned=0
: >"$work/signers"    # "key sequence" per verified signature
: >"$work/handovers"  # "new-key sequence old-key" per verified key change
: >"$work/purges"     # the retention_purge entries, which record the hashes of what they removed
while IFS=$'\t' read -r sequence kind recorded_at prev_hash hash signature key; do
  [ "$sequence" = "sequence" ] && continue  # the header line
  file="entries/$sequence.json"
  if [ -z "$first" ]; then
    first=$sequence
    prev=$prev_hash  # the entry before the first is not in the bundle: its hash is taken as the first link
  elif [ "$sequence" -ne $((last + 1)) ]; then
    fail "entry $sequence follows entry $last: the entries between them are missing"
  fi
  [ "$prev_hash" = "$prev" ] || fail "entry $sequence: prev_hash $prev_hash is not the hash of entry $last ($prev)"
  # The hash input: the previous entry's hash in hex, a newline, then the entry's bytes exactly as stored.
  computed=$({ printf '%s\n' "$prev_hash"; cat "$file"; } | sha256sum | cut -d' ' -f1)
  if [ "$computed" != "$hash" ]; then
    fail "entry $sequence: SHA-256 of $file is $computed, the ledger recorded $hash (edited)"
  fi
  printf '%s' "$hash" | xxd -r -p >"$work/recorded.bin"
  cmp -s "$work/recorded.bin" "entries/$sequence.hash.bin" || fail "entries/$sequence.hash.bin is not entry $sequence's hash"
  printf '%s' "$computed" | xxd -r -p >"$work/hash.bin"  # what is signed: the hash of the bytes as they are
  if [ "$signature" = "-" ]; then
    unsigned=$((unsigned + 1))
  else
    [ "$(xxd -p -c 64 "entries/$sequence.sig")" = "$signature" ] || fail "entries/$sequence.sig is not the signature in entries/chain.tsv"
    if [ "$key" = "-" ]; then
      fail "entry $sequence is signed, but the bundle names no key for it"
    elif openssl pkeyutl -verify -pubin -inkey "keys/$key.pem" -rawin -in "$work/hash.bin" \
      -sigfile "entries/$sequence.sig" >/dev/null 2>&1; then
      echo "$key $sequence" >>"$work/signers"
    else
      fail "entry $sequence: the signature does not verify with keys/$key.pem"
    fi
  fi
  if [ "$kind" = "signing_key" ]; then
    # A key change: the new key's proof binds it to this place in the chain, and the entry is signed by the old key.
    new=$(sed -n 's/.*"public_key":"\([0-9a-f]\{64\}\)".*/\1/p' "entries/$sequence.proof.json")
    grep -q "\"public_key\":\"$new\"" "$file" || fail "entry $sequence does not name the key its proof is for"
    grep -q "\"prev_hash\":\"$prev_hash\"" "entries/$sequence.proof.json" ||
      fail "entries/$sequence.proof.json is not tied to entry $sequence's place in the chain"
    if openssl pkeyutl -verify -pubin -inkey "keys/$new.pem" -rawin -in "entries/$sequence.proof.json" \
      -sigfile "entries/$sequence.proof.sig" >/dev/null 2>&1; then
      echo "$new $sequence $key" >>"$work/handovers"
    else
      fail "entry $sequence: the new key's proof does not verify with keys/$new.pem"
    fi
  fi
  [ "$kind" = "retention_purge" ] && echo "$file" >>"$work/purges"
  prev=$hash  # after a failure, keep checking the rest against what the ledger recorded
  last=$sequence
  entries=$((entries + 1))
done <entries/chain.tsv

if [ "$entries" -gt 0 ]; then
  echo "entries $first-$last: $entries hashes recomputed and linked; $unsigned unsigned"
  first_prev=$(sed -n '2p' entries/chain.tsv | cut -f4)
  while read -r purge; do
    grep -o '"last":[0-9]*,"last_hash":"[0-9a-f]*"' "$purge" || true
  done <"$work/purges" >"$work/purged-links"
  if [ "$first_prev" = "0000000000000000000000000000000000000000000000000000000000000000" ]; then
    echo "entry $first is the first entry of the ledger"
  elif grep -q "^\"last\":$((first - 1)),\"last_hash\":\"$first_prev\"$" "$work/purged-links"; then
    echo "entry $((first - 1)) was purged; a retention_purge entry in this bundle recorded its hash $first_prev"
  else
    echo "entry $first follows entry $((first - 1)), which is not in this bundle (hash $first_prev)"
  fi
fi
# Each key, in the order it began signing: the first must be one you trust; a later one is trusted through the
# key change that handed over to it (signed by the key before it, with the new key's proof), when the bundle has it.
awk 'FILENAME == ARGV[1] { handed[$1] = "handed over at entry " $2 " by key " substr($3, 1, 16) "..."; next }
  !($1 in count) { keys[++n] = $1; from[$1] = $2 }
  { count[$1]++ }
  END {
    for (i = 1; i <= n; i++) {
      k = keys[i]
      how = (k in handed) ? handed[k] : "compare it with the key you were given"
      printf "key %s: signed %d entries from entry %d; %s\n", k, count[k], from[k], how
    }
  }' "$work/handovers" "$work/signers"

if [ -f checkpoint.signed.json ]; then
  c_sequence=$(sed -n 's/.*"sequence":\([0-9]*\).*/\1/p' checkpoint.signed.json)
  c_hash=$(sed -n 's/.*"head_hash":"\([0-9a-f]\{64\}\)".*/\1/p' checkpoint.signed.json)
  c_key=$(sed -n 's/.*"public_key":"\([0-9a-f]\{64\}\)".*/\1/p' checkpoint.signed.json)
  if [ "$entries" -gt 0 ]; then
    [ "$c_sequence" = "$last" ] || fail "the checkpoint is of entry $c_sequence, the entries end at $last"
    [ "$c_hash" = "$prev" ] || fail "the chain ends at hash $prev, the checkpoint says $c_hash"
  fi
  if [ -f checkpoint.sig ]; then
    if openssl pkeyutl -verify -pubin -inkey "keys/$c_key.pem" -rawin -in checkpoint.signed.json \
      -sigfile checkpoint.sig >/dev/null 2>&1; then
      echo "checkpoint of entry $c_sequence (hash $c_hash): signature verified with key $c_key"
    else
      fail "the checkpoint's signature does not verify with keys/$c_key.pem"
    fi
  else
    echo "checkpoint of entry $c_sequence (hash $c_hash): UNSIGNED, compare its hash with one you hold"
  fi
else
  echo "no checkpoint in this bundle (see bundle.json)"
fi

if [ "$failures" -gt 0 ]; then
  echo "NOT VERIFIED: $failures problem(s)"
  exit 1
fi
echo "VERIFIED"
