"""How the FaceLab demo world was made: training of the demo generator and its style knobs,
the face-analysis nets, the factor reader and estimators, on CPU, resumably.

Developer tools (`iceaudit facelab train-*`), never imported by an audit: the audit reads
only the trained files (`iceaudit.facelab.asset_files`).
"""
