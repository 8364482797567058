"""Home: what the lab is and what each page teaches."""

import streamlit as st

st.title("Diffusion Lab")
st.markdown(
    """
A diffusion model learns to **undo noise**. The *forward process* adds a little Gaussian noise at each
of $T$ steps until data becomes pure noise; a network $\\epsilon_\\theta(x_t, t)$ learns to predict the
noise that was added; the *reverse process* starts from fresh noise and removes it step by step.
Everything in this lab runs on small 2D point clouds (where the true answer is known exactly) and on
MNIST digits, on a laptop CPU, from checkpoints made by the lab's own training command.
"""
)
st.latex(r"q(x_t \mid x_0) = \mathcal{N}\!\left(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\,I\right),"
         r"\qquad \bar\alpha_t = \prod_{s=1}^{t} (1-\beta_s)")
st.info("The engine behind these pages is `core/`: `python -m core train --data eight_gaussians "
        "--out runs/my-model` trains the same models from the command line.", icon=":material/terminal:")
