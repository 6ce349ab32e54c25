"""mfutils: helpers for reproducing *Instruction Anchors* (arXiv 2602.03677).

Where things live (one package per role; ``tests/test_layout.py`` keeps them free of import
cycles):

=============  ===========================================================================
``runs``       a run's typed parameters and the results folder they hash to (``params``,
               ``results``), the project's paths, the machine probe
``data``       the item schema, prompts, synthetic conflicts (``synthetic``), the pretrained
               organism's instruction banks (``instruction_banks``), the paper's items
               (``real_items``)
``engine``     interventions as context managers (``interventions``), exact incremental
               recomputation (``incremental``), encoding with token spans, readouts and
               statistics (``metrics``), GPU memory estimates (``memory``)
``models``     offline loading of every family (``loading``, ``adapters``), the two organisms,
               their training and the recipe trials' rule, the GPU checkpoints' cards
``findings``   one module per chapter (``behaviour`` 0, ``routing`` 1, ``arbitration`` and
               ``lens`` 2, ``inertia`` 3, ``head_scores`` 4, ``causal`` 5), the items each reads
               (``evaluation``), the verdict rules (``rules``), the paper's curves
``book``       the chapter registry, the runner (``python -m mfutils``), its dry run, a
               chapter's session, tables, figures, generated prose, the front page's
               comparison, what one chapter reads from another (``crossrefs``), the GPU
               page's estimates, nbval's budget and tolerance
=============  ===========================================================================

Submodules are imported lazily by the notebooks; importing the package itself is cheap
and has no side effects (no thread settings, no model loading) beyond one warnings filter.
"""

import warnings

# tqdm warns, on import, that Jupyter widgets are missing; the text would sit in every
# executed chapter and differ between machines with and without ipywidgets
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
