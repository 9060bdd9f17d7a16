set -e
for pc in 131072 262144 524288 0; do
  d=/tmp/bp$pc; f=""; if [ $pc != 0 ]; then f="-DKVIK_DEVIO_PIECE=$pc"; fi
  cmake -S . -B $d -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DKVIK_REMOTE=OFF -DCMAKE_C_FLAGS="$f" >/dev/null && ninja -C $d >/dev/null &
done; wait
K=/tmp/bp0/tools/kvik/kvik; F=/var/tmp/dev.bin
$K bench --file $F --size 8G --force --cache hot --repeat 1 >/dev/null 2>&1
for pc in 131072 262144 524288 0; do for t in 16 32; do
  echo "piece=$pc threads=$t: $(/tmp/bp$pc/tools/kvik/kvik bench --mem device --file $F --no-write --cache hot --threads $t --repeat 3 --json 2>/dev/null | grep '"engine":"kvik"' | grep -o '"gbps":[0-9.]*')"
done; done
