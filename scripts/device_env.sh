# Sourced by the GPU scripts: the peer libraries carried as wheels (.whl, see the device tool's README)
# installed into /tmp/site when they are not importable, tfbench itself first on PYTHONPATH, `tf`
# for the command line, and the GPU's name in $res/gpu.txt (res: the script's results folder).
if [ -d .whl ] && ! python -c "import spikingjelly, snntorch, norse" 2>/dev/null; then
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > /dev/null 2>&1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
python -c "import spikingjelly, snntorch, norse" 2>/dev/null || echo "warning: a peer library is missing" >&2
tf() { python -m tfbench "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$res/gpu.txt" 2>&1
