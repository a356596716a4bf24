function matconvnet_forward(net_file, input_file, keep_vars)
%MATCONVNET_FORWARD  Timed test-mode forward passes of a MatConvNet model, on command.
%   Called by benchmarks/bench_vs_matconvnet.py, which drives it through stdin so that
%   its runs can be interleaved with the PyTorch runs of the same input, while Octave's
%   start-up and the model loading stay outside the measurements.
%
%   MATCONVNET_FORWARD(NET_FILE, INPUT_FILE, KEEP_VARS)
%     NET_FILE    .mat file with a variable `net`: either a SimpleNN struct (field
%                 `layers`, a cell array; run with vl_simplenn(net, x, [], [], 'mode',
%                 'test')) or a saved DagNN struct (fields `vars`, `params`, `layers`;
%                 loaded with dagnn.DagNN.loadobj, mode 'test', run with net.eval).
%     INPUT_FILE  .mat file with the input vars in MatConvNet layout H x W x C x N single,
%                 N = videos x frames (frames fastest): `x0` for a SimpleNN, the DagNN
%                 input var names (`input`, `input_flow`) otherwise; `curBatchSize`
%                 (videos) and `nFrames` (frames per video) for nets with 3D layers:
%                 net.meta.curBatchSize = curBatchSize and net.meta.curNumFrames =
%                 repmat(nFrames, 1, numel(net.layers)), as cnn_train_dag.m sets them.
%     KEEP_VARS   comma-separated names of the vars to save (DagNN var names; for a
%                 SimpleNN `xK` = res(K+1).x, the DagNN fromSimpleNN naming). DagNN:
%                 these vars are made precious so conserveMemory keeps them.
%
%   After loading it prints `VERSION ...`, `BLAS ...` (Octave's version('-blas'): the
%   OpenBLAS build and the kernel it chose) and `READY <seconds spent loading>`, then
%   reads one command
%   a line from stdin:
%     run K        K forward passes, each timed with tic/toc on its own;
%                  prints `TIMES t1 ... tK` (seconds) and `CPU c1 ... cK` (cputime
%                  seconds of the process, all threads)
%     save PATH    saves struct `outputs` (outputs.<var> as double) of the last forward
%                  pass to PATH (-mat7-binary)
%     layers       prints `LAYER <name> <seconds>` for each layer of the last pass, as
%                  MatConvNet records it (vl_simplenn's res(i).time, DagNN's
%                  layers(l).forwardTime), then `END`
%     quit         returns
%   Needs MatConvNet on the path (vl_setupnn) and, for 3D nets, MexConv3D's
%   mex_conv3d/mex_maxpool3d (the project's refbuild: setup_refbuild()).

t0 = tic ;
s = load(net_file) ;
if ~isfield(s, 'net')
  error('matconvnet_forward: %s holds no variable `net`', net_file) ;
end
d = load(input_file) ;
keep = strsplit(keep_vars, ',') ;
is_dag = isfield(s.net, 'vars') && isfield(s.net, 'params') ;
if is_dag
  net = dagnn.DagNN.loadobj(s.net) ;
  clear s ;
  net.mode = 'test' ;
  % the loss and error layers need `label`; the PyTorch side skips them, so drop them
  for l = {net.layers(cellfun(@(in) any(strcmp(in, 'label')), {net.layers.inputs})).name}
    net.removeLayer(l{1}) ;
  end
  if isfield(d, 'curBatchSize')
    net.meta.curBatchSize = double(d.curBatchSize) ;
    net.meta.curNumFrames = repmat(double(d.nFrames), 1, numel(net.layers)) ;
  end
  for i = 1:numel(keep)
    v = net.getVarIndex(keep{i}) ;
    if isnan(v), error('matconvnet_forward: no var `%s` in %s', keep{i}, net_file) ; end
    net.vars(v).precious = true ;
  end
  names = net.getInputs() ;
  inputs = {} ;
  for i = 1:numel(names)
    if ~isfield(d, names{i})
      error('matconvnet_forward: %s has no input `%s`', input_file, names{i}) ;
    end
    inputs(end+1:end+2) = {names{i}, d.(names{i})} ;
  end
  forward = @() dag_forward(net, inputs) ;
else
  net = vl_simplenn_tidy(s.net) ;
  clear s ;
  x = d.x0 ;
  forward = @() vl_simplenn(net, x, [], [], 'mode', 'test') ;
end
fprintf('VERSION Octave %s\n', version()) ;
try, fprintf('BLAS %s\n', version('-blas')) ; catch, end
fprintf('READY %.3f\n', toc(t0)) ;
fflush(stdout) ;

res = [] ;
while true
  % input(): fgetl(stdin) waits for a full buffer (or EOF) on a pipe in Octave 7
  try, line = input('', 's') ; catch, break ; end
  parts = strsplit(strtrim(line), ' ') ;
  switch parts{1}
    case 'run'
      k = str2double(parts{2}) ;
      times = zeros(1, k) ;
      cpus = zeros(1, k) ;
      for i = 1:k
        res = [] ;  % free the previous pass's vars before timing the next
        c0 = cputime() ;
        t = tic ;
        res = forward() ;
        times(i) = toc(t) ;
        cpus(i) = cputime() - c0 ;
      end
      fprintf('TIMES%s\n', sprintf(' %.6f', times)) ;
      fprintf('CPU%s\n', sprintf(' %.6f', cpus)) ;
    case 'save'
      outputs = struct() ;
      for i = 1:numel(keep)
        name = keep{i} ;
        if is_dag
          value = net.vars(net.getVarIndex(name)).value ;
        else
          value = res(str2double(name(2:end)) + 1).x ;
        end
        outputs.(name) = double(gather(value)) ;
      end
      save('-mat7-binary', parts{2}, 'outputs') ;
      fprintf('SAVED\n') ;
    case 'layers'
      % per-layer times of the last pass, as MatConvNet itself records them
      % (vl_simplenn: res(i).time; DagNN eval: net.layers(l).forwardTime)
      if is_dag
        for l = 1:numel(net.layers)
          if ~isempty(net.layers(l).forwardTime)
            fprintf('LAYER %s %.6f\n', net.layers(l).name, net.layers(l).forwardTime) ;
          end
        end
      else
        for i = 1:numel(net.layers)
          fprintf('LAYER %s %.6f\n', net.layers{i}.name, res(i).time) ;
        end
      end
      fprintf('END\n') ;
    case 'quit'
      break ;
    otherwise
      fprintf('ERROR unknown command `%s`\n', line) ;
  end
  fflush(stdout) ;
end

function out = dag_forward(net, inputs)
net.eval(inputs) ;
out = true ;
