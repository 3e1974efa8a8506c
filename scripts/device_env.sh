# Sourced by the GPU scripts: the peer libraries carried as wheels (.whl, see the device tool's README)
# installed into /tmp/site when they are not importable, tfbench itself first on PYTHONPATH, `tf`
# for the command line, the GPU's name in $res/gpu.txt (res: the script's results folder), and the stage
# clock: `past NAME` is true, and logs "skipped NAME" into $res/$STAGE_LOG, once BUDGET_S seconds have
# passed since this file was sourced (a script starts a stage only while it is false).
if [ -d .whl ] && ! python -c "import spikingjelly, snntorch, norse" 2>/dev/null; then
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > /dev/null 2>&1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
python -c "import spikingjelly, snntorch, norse" 2>/dev/null || echo "warning: a peer library is missing" >&2
tf() { python -m tfbench "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$res/gpu.txt" 2>&1
start=$(date +%s)
past() {
  [ $(( $(date +%s) - start )) -gt "${BUDGET_S:?}" ] && echo "skipped $1: past ${BUDGET_S} s" | tee -a "$res/${STAGE_LOG:?}"
}
