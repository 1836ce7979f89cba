"""Broken question answers in the shapes the embedded model (SmolLM2-135M) produces.

Each is the JSON text of one answer to the quiz prompt (keys ``q1`` .. ``qN`` of
``{question, options, answer, why, concept}``) with the failure it shows. They are
transcribed in the model's failure shapes, not captured from a live run: see the module's
tests for what each must lead to.
"""

from __future__ import annotations

DUPLICATE_OPTIONS = """{"q1": {"question": "What is the powerhouse of the cell?",
 "options": ["Mitochondria", "mitochondria", "Mitochondria.", "Nucleus"],
 "answer": "Mitochondria", "why": "Mitochondria make ATP.", "concept": "cell organelles"}}"""

TWO_CORRECT = """{"q1": {"question": "Which of these are noble gases?",
 "options": ["A) Helium", "B) Oxygen", "C) Neon", "D) Nitrogen"],
 "answer": "A and C", "why": "Helium and neon have full outer shells.",
 "concept": "noble gases"}}"""

INDEX_OUT_OF_RANGE = """{"q1": {"question": "What is 2 + 2?",
 "options": ["3", "4", "5", "6"], "answer": "7", "why": "Two plus two is four.",
 "concept": "addition"}}"""

EMPTY_FIELDS = """{"q1": {"question": "", "options": ["", "", "", ""], "answer": "",
 "why": "", "concept": ""}}"""

QUESTION_AS_OPTION = """{"q1": {"question": "What is the speed of light?",
 "options": ["What is the speed of light?", "3 x 10^8 m/s", "340 m/s", "9.8 m/s^2"],
 "answer": "3 x 10^8 m/s", "why": "Light travels at about 300,000 km per second.",
 "concept": "speed of light"}}"""

QUESTION_AS_ANSWER = """{"q1": {"question": "What is photosynthesis?",
 "options": ["What is photosynthesis?", "Respiration", "Digestion", "Osmosis"],
 "answer": "What is photosynthesis?", "why": "What is photosynthesis?",
 "concept": "photosynthesis"}}"""

ECHOED_EXAMPLE = """{"q1": {"question": "What is the SI unit of force?",
 "options": ["newton", "joule", "watt", "pascal"], "answer": "newton",
 "why": "Force is mass times acceleration, measured in newtons.", "concept": "SI units"},
 "q2": {"question": "What is the SI unit of force?",
 "options": ["newton", "joule", "watt", "pascal"], "answer": "newton",
 "why": "Force is mass times acceleration, measured in newtons.", "concept": "SI units"}}"""

LOOPING = """{"q1": {"question": "What is the the the the the the the the the the cell?",
 "options": ["cell", "the cell", "a cell", "cells"], "answer": "cell",
 "why": "The cell is the cell is the cell is the cell is the cell.", "concept": "cell"}}"""

LETTER_ANSWER = """{"q1": {"question": "Which planet is closest to the Sun?",
 "options": ["A) Venus", "B) Mercury", "C) Earth", "D) Mars"], "answer": "B",
 "why": "Mercury orbits closest to the Sun.", "concept": "solar system"}}"""

ONE_GOOD_TWO_BAD = """{"q1": {"question": "What gas do plants take in for photosynthesis?",
 "options": ["Carbon dioxide", "Oxygen", "Nitrogen", "Hydrogen"],
 "answer": "Carbon dioxide", "why": "Plants fix carbon dioxide into sugars.",
 "concept": "photosynthesis"},
 "q2": {"question": "What do plants release?", "options": ["Oxygen", "Oxygen", "Oxygen",
 "Oxygen"], "answer": "Oxygen", "why": "Oxygen.", "concept": "photosynthesis"},
 "q3": {"question": "", "options": ["a", "b", "c", "d"], "answer": "a", "why": "",
 "concept": ""}}"""
